//! `chatalot-desktop [chatalot://…]`
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

fn main() {
    chatalot_desktop::run();
}
