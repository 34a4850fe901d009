//! Shared style classes (Tailwind-style utilities, compiled by encre-css at build time): one place,
//! so that buttons and inputs look the same on every page.

/// Classes of a text input.
pub const INPUT: &str = "block w-full rounded-lg border border-slate-300 bg-white px-3 py-2 text-base text-slate-900 \
    placeholder-slate-400 focus:border-indigo-500 focus:outline-none focus:ring-2 focus:ring-indigo-500 \
    dark:border-slate-700 dark:bg-slate-900 dark:text-slate-100";
/// Classes of a form's full-width primary button.
pub const BUTTON: &str = "inline-flex w-full items-center justify-center rounded-lg bg-indigo-600 px-4 py-2 font-semibold \
    text-white hover:bg-indigo-500 focus:outline-none focus:ring-2 focus:ring-indigo-400 focus:ring-offset-2 \
    disabled:opacity-60 dark:focus:ring-offset-slate-900";
/// Classes of a text link.
pub const LINK: &str = "font-medium text-indigo-600 hover:underline dark:text-indigo-400";
/// Classes of a small secondary action (message and member actions).
pub const SMALL: &str = "rounded px-2 py-0.5 text-xs font-medium text-slate-600 hover:bg-slate-200 focus:outline-none \
    focus-visible:ring-2 focus-visible:ring-indigo-400 dark:text-slate-300 dark:hover:bg-slate-700";
/// Classes of an inline primary button (beside an input).
pub const PRIMARY: &str = "shrink-0 rounded-lg bg-indigo-600 px-3 py-2 text-sm font-semibold text-white hover:bg-indigo-500 \
    focus:outline-none focus-visible:ring-2 focus-visible:ring-indigo-400 disabled:opacity-50";
