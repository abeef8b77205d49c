"""Microsoft 365 (Entra ID over Microsoft Graph): the IdentityProvider and its Graph client."""
