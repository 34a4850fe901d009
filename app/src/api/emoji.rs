//! The emoji catalog, for the picker and `:shortcode:` completion: loaded by the browser the first
//! time one is used (and kept for the tab), so its data is not in the WASM bundle.

use crate::{error::AppError, model::emoji::EmojiCatalog};
use leptos::prelude::*;

#[server(prefix = "/api/v1", endpoint = "emoji/catalog")]
pub async fn load_emoji() -> Result<EmojiCatalog, AppError> {
    crate::web::actor().await?;
    Ok(domain::emoji::catalog().clone())
}
