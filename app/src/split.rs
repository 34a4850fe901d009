//! Code loaded when first needed. A part of the interface that most visits never open (the emoji
//! picker, the poll form, …) is a *split point*: its code leaves the page's WASM for a chunk of its
//! own (`pkg/split_*.wasm`), which the browser fetches the first time the part is shown.
//!
//! `cargo xtask build` cuts the bundle at the points that `split!` declares (wasm_split_cli_support,
//! the splitter Leptos's own lazy routes use) before wasm-bindgen. A split point holds a plain
//! function pointer (a component's constructor, say); on the server it is that pointer from the
//! start, so server rendering never waits. So it is in every build but the bundle's (feature
//! `wasm-split`, which only `frontend` turns on): a WASM test of this crate is not split, and
//! must not import a chunk loader. In the browser, [`Split::get`] answers at once once the
//! chunk is in, and [`lazy`] shows "Loading…" until then, or a way to try again when the fetch fails
//! (a tab open across an upgrade asks for a chunk the server no longer has).

use leptos::prelude::*;
use std::{future::Future, pin::Pin};

/// Why a chunk is not here: the fetch or the instantiation failed (the browser's console says more).
pub use leptos::wasm_split::SplitLoaderError;

/// How a chunk is fetched: the function the splitter rewrote into a fetch of its chunk.
pub type Load<T> = fn() -> Pin<Box<dyn Future<Output = Result<T, SplitLoaderError>>>>;

/// A value (a function pointer) that lives in a chunk of its own: see the module's documentation.
pub struct Split<T: 'static> {
    #[cfg(all(target_family = "wasm", feature = "wasm-split"))]
    loaded: std::sync::OnceLock<T>,
    #[cfg(all(target_family = "wasm", feature = "wasm-split"))]
    load: Load<T>,
    #[cfg(not(all(target_family = "wasm", feature = "wasm-split")))]
    here: T,
}

impl<T: Copy + 'static> Split<T> {
    /// In the browser: fetched by `load` when first asked for.
    #[cfg(all(target_family = "wasm", feature = "wasm-split"))]
    pub const fn chunk(load: Load<T>) -> Self {
        Self { loaded: std::sync::OnceLock::new(), load }
    }

    /// On the server: the value itself.
    #[cfg(not(all(target_family = "wasm", feature = "wasm-split")))]
    pub const fn here(value: T) -> Self {
        Self { here: value }
    }

    /// The value, if its chunk is in (always on the server).
    pub fn get(&self) -> Option<T> {
        #[cfg(all(target_family = "wasm", feature = "wasm-split"))]
        return self.loaded.get().copied();
        #[cfg(not(all(target_family = "wasm", feature = "wasm-split")))]
        return Some(self.here);
    }

    /// The value, fetching its chunk first if need be. A failure is not remembered: asking again
    /// tries again.
    pub async fn load(&'static self) -> Result<T, SplitLoaderError> {
        #[cfg(all(target_family = "wasm", feature = "wasm-split"))]
        {
            if let Some(value) = self.loaded.get() {
                return Ok(*value);
            }
            let value = (self.load)().await?;
            Ok(*self.loaded.get_or_init(|| value))
        }
        #[cfg(not(all(target_family = "wasm", feature = "wasm-split")))]
        Ok(self.here)
    }
}

/// Declares a split point: `split!(NAME in chunk_name: Type = value);`, where the value (a function
/// pointer, usually a closure that builds a view) and all the code only it reaches go to the chunk
/// `chunk_name`. The wasm_split glue is `unsafe` (it imports the loader from JavaScript), hence the
/// `allow`: the unsafety is the macro's, checked by its authors, not code of ours.
macro_rules! split {
    ($(#[$attr:meta])* $vis:vis $name:ident in $chunk:ident: $ty:ty = $value:expr;) => {
        $(#[$attr])*
        #[allow(unsafe_code)]
        #[cfg(all(target_family = "wasm", feature = "wasm-split"))]
        $vis static $name: $crate::split::Split<$ty> = $crate::split::Split::<$ty>::chunk(|| {
            #[::leptos::wasm_split::wasm_split($chunk, wasm_split_path = ::leptos::wasm_split, fallible)]
            fn $chunk() -> Result<$ty, $crate::split::SplitLoaderError> {
                Ok($value)
            }
            Box::pin($chunk())
        });
        $(#[$attr])*
        #[cfg(not(all(target_family = "wasm", feature = "wasm-split")))]
        $vis static $name: $crate::split::Split<$ty> = $crate::split::Split::<$ty>::here($value);
    };
}
pub(crate) use split;

/// The look of the "Loading…" and failure notes.
const NOTE: &str =
    "z-40 rounded-lg border border-slate-200 bg-white p-2 text-sm shadow-lg dark:border-slate-700 dark:bg-slate-900";

/// Shows what `show` makes of a split point's value: at once when its chunk is in; otherwise
/// "Loading…" while it is fetched, and on failure what happened with a button to try again, both
/// placed by `class` (where the part itself would be).
pub fn lazy<T>(
    split: &'static Split<T>,
    class: &'static str,
    show: impl Fn(T) -> AnyView + Send + Sync + 'static,
) -> impl IntoView
where
    T: Copy + Send + Sync + 'static,
{
    // `None`: loading; `Some(Err(()))`: the last try failed.
    let state = RwSignal::new(split.get().map(Ok::<T, ()>));
    let fetch = move || {
        state.set(None);
        #[cfg(all(target_family = "wasm", feature = "wasm-split"))]
        leptos::task::spawn_local(async move {
            let got = split.load().await.map_err(|_| ());
            // The view may be gone by now (closed before its chunk came).
            let _ = state.try_set(Some(got));
        });
    };
    if state.get_untracked().is_none() {
        fetch();
    }
    let retry = Callback::new(move |()| fetch());
    move || match state.get() {
        Some(Ok(value)) => show(value),
        None => waiting(class, None),
        Some(Err(())) => waiting(class, Some(retry)),
    }
}

/// The note in place of a part whose chunk is not in: loading, or failed (with `retry`). Not
/// generic, so every split point shares its code.
fn waiting(class: &'static str, retry: Option<Callback<()>>) -> AnyView {
    match retry {
        None => view! {
            <p
                role="status"
                class=format!("{class} {NOTE} text-slate-600 dark:text-slate-400")
                data-testid="chunk-loading"
            >
                "Loading…"
            </p>
        }
        .into_any(),
        Some(retry) => view! {
            <p role="alert" class=format!("{class} {NOTE} text-red-700 dark:text-red-300") data-testid="chunk-failed">
                "This part of Chatalot could not be loaded. The server may have been upgraded: reload the page. "
                <button type="button" class="underline" on:click=move |_| retry.run(())>
                    "Try again"
                </button>
            </p>
        }
        .into_any(),
    }
}
