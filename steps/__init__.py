"""Step definitions: parse a step, call infra/, assert. No HTTP and no sleeps here."""
