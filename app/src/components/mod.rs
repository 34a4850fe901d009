//! Reusable pieces of UI.

pub mod avatar;
pub mod form;
pub mod layout;
pub mod sidebar;
pub mod style;
