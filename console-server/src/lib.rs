//! The school's console (issue 4): enrolment, agent ingest, storage, the web console and API.
