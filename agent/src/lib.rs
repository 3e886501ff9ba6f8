//! The agent on each school laptop (issue 5): sources, matching, capture, spool and uplink.
