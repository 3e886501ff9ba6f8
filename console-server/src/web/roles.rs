//! Who may reach a page. A handler names the roles it serves in its
//! signature, as the type of the signed-in staff it takes ([`Signed`]);
//! the role is checked when the request is read, before the handler runs,
//! so no handler can forget it. Someone signed in with another role gets
//! 403 naming their role; someone not signed in is sent to sign in.
//!
//! | type | roles |
//! |---|---|
//! | [`AnyStaff`] | admin, reviewer, auditor |
//! | [`CaptureStaff`] | admin, reviewer: captured text, screenshots, triage |
//! | [`OversightStaff`] | admin, auditor: the audit log |
//! | [`AdminStaff`] | admin: laptops, staff, settings, libraries, the AUP |

use std::marker::PhantomData;
use std::ops::Deref;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::auth::Staff;
use crate::store::Role;

/// A set of roles a page serves.
pub trait Roles: Send + Sync + 'static {
    const ROLES: &'static [Role];
}

/// Every role.
pub struct Everyone;
/// Those who see captured text and screenshots, and triage.
pub struct CaptureReaders;
/// Those who oversee the monitoring: the audit log.
pub struct Overseers;
/// Administrators.
pub struct Admins;

impl Roles for Everyone {
    const ROLES: &'static [Role] = &[Role::Admin, Role::Reviewer, Role::Auditor];
}
impl Roles for CaptureReaders {
    const ROLES: &'static [Role] = &[Role::Admin, Role::Reviewer];
}
impl Roles for Overseers {
    const ROLES: &'static [Role] = &[Role::Admin, Role::Auditor];
}
impl Roles for Admins {
    const ROLES: &'static [Role] = &[Role::Admin];
}

/// A signed-in member of staff whose role is one of `R`'s.
pub struct Signed<R>(Staff, PhantomData<R>);

pub type AnyStaff = Signed<Everyone>;
pub type CaptureStaff = Signed<CaptureReaders>;
pub type OversightStaff = Signed<Overseers>;
pub type AdminStaff = Signed<Admins>;

impl<R> Deref for Signed<R> {
    type Target = Staff;

    fn deref(&self) -> &Staff {
        &self.0
    }
}

impl<R: Roles> FromRequestParts<AppState> for Signed<R> {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let staff = Staff::from_request_parts(parts, state).await?;
        staff
            .require(R::ROLES)
            .map_err(IntoResponse::into_response)?;
        Ok(Signed(staff, PhantomData))
    }
}
