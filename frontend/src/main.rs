fn main() {
    // Without the hook a Rust panic shows up in the browser console as an opaque "unreachable" trap.
    console_error_panic_hook::set_once();
    // Before the app's first request, so that request already carries the token from the sign-in link.
    parlance_frontend::sign_in::take_from_link();
    leptos::mount::mount_to_body(parlance_frontend::App);
}
