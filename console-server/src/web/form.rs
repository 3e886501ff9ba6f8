//! An `application/x-www-form-urlencoded` body as a list of fields, so a
//! field may repeat (the inbox's selected captures) and a missing field is
//! simply absent.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::header;

use super::layout::WebError;

/// Largest form accepted.
const MAX_FORM: usize = 256 * 1024;
/// Largest [`LargeForm`]: an MIS export pasted into the register's form.
const MAX_LARGE_FORM: usize = 5 * 1024 * 1024;

/// A submitted form.
#[derive(Debug, Clone, Default)]
pub struct Form(pub Vec<(String, String)>);

impl Form {
    /// Parses a urlencoded body.
    pub fn parse(body: &[u8]) -> Form {
        Form(
            form_urlencoded::parse(body)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `name`, in order.
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A form that may be as large as an MIS export. Only for signed-in
/// admins' routes: put the `Staff` extractor first, so nobody else's body
/// is read.
#[derive(Debug, Clone, Default)]
pub struct LargeForm(pub Form);

async fn read(req: Request, max: usize) -> Result<Form, WebError> {
    let is_form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !is_form {
        return Err(WebError::BadRequest(
            "expected a form (application/x-www-form-urlencoded)".into(),
        ));
    }
    let bytes: Bytes = axum::body::to_bytes(req.into_body(), max)
        .await
        .map_err(|_| WebError::BadRequest(format!("the form is over {max} bytes")))?;
    Ok(Form::parse(&bytes))
}

impl<S: Send + Sync> FromRequest<S> for Form {
    type Rejection = WebError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, WebError> {
        read(req, MAX_FORM).await
    }
}

impl<S: Send + Sync> FromRequest<S> for LargeForm {
    type Rejection = WebError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, WebError> {
        read(req, MAX_LARGE_FORM).await.map(LargeForm)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_fields_and_escapes() {
        let f = Form::parse(b"id=a&id=b&note=hello+world%21&csrf=x%3D");
        assert_eq!(f.all("id").collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(f.get("note"), Some("hello world!"));
        assert_eq!(f.get("csrf"), Some("x="));
        assert_eq!(f.get("missing"), None);
    }
}
