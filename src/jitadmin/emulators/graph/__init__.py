"""Microsoft Graph v1.0 and Entra token endpoint emulator."""
