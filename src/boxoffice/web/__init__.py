"""HTTP plumbing shared by every function: routing, problem+json, validation, health, metrics."""
