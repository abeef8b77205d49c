"""TicketSystem over the ConnectWise PSA (Manage) REST API."""
