//! Authentication by the embedding application: its own middleware puts a [`Principal`] into
//! the request extensions, and this provider hands it on.

use super::{AuthFuture, AuthProvider, AuthRequest, Principal};

/// Reads the [`Principal`] an embedding application's middleware stored in the request.
#[derive(Debug, Clone, Copy, Default)]
pub struct ExtensionProvider;

impl AuthProvider for ExtensionProvider {
    fn name(&self) -> &'static str {
        "app"
    }

    fn authenticate<'a>(&'a self, request: &'a AuthRequest<'a>) -> AuthFuture<'a> {
        let principal = request.extensions.get::<Principal>().cloned();
        Box::pin(async move { Ok(principal) })
    }
}
