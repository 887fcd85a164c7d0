//! certdeck library.
