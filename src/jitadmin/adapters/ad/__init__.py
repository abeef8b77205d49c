"""On-premises Active Directory over LDAPS: the IdentityProvider and its LDAP plumbing."""
