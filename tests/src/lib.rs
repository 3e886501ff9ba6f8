//! End-to-end tests of the whole system run from `tests/`; `tests/run` runs every test.
