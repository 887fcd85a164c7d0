//! Test helper for tests/e2e_tmux.rs: enter the dashboard's terminal mode, forget the guard
//! (so only the panic hook can restore the terminal), and panic.

fn main() {
    certdeck::tui::install_panic_hook();
    let guard = certdeck::tui::TerminalGuard::enter(false).expect("enter the terminal");
    std::mem::forget(guard);
    std::thread::sleep(std::time::Duration::from_millis(300));
    panic!("deliberate panic inside the UI");
}
