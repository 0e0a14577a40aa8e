//! Scenario behaviour tests (filled in by the scenario work).
