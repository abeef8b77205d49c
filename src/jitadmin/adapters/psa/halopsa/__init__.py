"""TicketSystem over the HaloPSA API."""
