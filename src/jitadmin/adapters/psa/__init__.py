"""PSA ticket systems (ConnectWise, Autotask, HaloPSA) on their shared HTTP plumbing (``http``)."""
