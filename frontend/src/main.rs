fn main() {
    // Without the hook a Rust panic shows up in the browser console as an opaque "unreachable" trap.
    console_error_panic_hook::set_once();
    leptos::mount::mount_to_body(parlance_frontend::App);
}
