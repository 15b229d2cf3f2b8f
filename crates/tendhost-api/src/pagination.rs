//! The page envelope every paginated list answers with: `{data, pagination}` and the
//! `pagination` block. List item types live with their resource (`hosts`, `jobs`, `rollouts`).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `per_page` when the request does not say.
pub const DEFAULT_PER_PAGE: u32 = 50;

/// The largest `per_page` accepted.
pub const MAX_PER_PAGE: u32 = 200;

/// Where a page sits in the whole list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"page": 2, "per_page": 50, "total_items": 120, "total_pages": 3}))]
pub struct Pagination {
    /// This page, counted from 1.
    #[schema(minimum = 1)]
    pub page: u32,
    /// Items per page (1 to 200).
    #[schema(minimum = 1, maximum = 200)]
    pub per_page: u32,
    /// Items matching the filters, over all pages.
    pub total_items: u64,
    /// Pages needed for `total_items` (0 when nothing matches). A page past the last one is
    /// answered with an empty `data`.
    pub total_pages: u64,
}

impl Pagination {
    /// The block for page `page` of `total_items` items, `per_page` at a time.
    pub fn new(page: u32, per_page: u32, total_items: u64) -> Pagination {
        let per_page_items = u64::from(per_page.max(1));
        Pagination {
            page,
            per_page,
            total_items,
            total_pages: total_items.div_ceil(per_page_items),
        }
    }
}
