"""TicketSystem over the Autotask PSA REST API, with its hourly request budget."""
