"""The on-prem agent (``jitadmin agent enroll|run``): runs inside the customer's network, talks
to the domain controller with jitadmin's AD adapter and to the jitadmin server only outbound,
over HTTPS, every request signed with its own Ed25519 key (docs/connectors.md)."""
