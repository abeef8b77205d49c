"""Use cases. Each public function is one transaction (plus, for the worker, the outside calls)."""
