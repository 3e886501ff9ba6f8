//! Term libraries and the matching engine (issue 3).
