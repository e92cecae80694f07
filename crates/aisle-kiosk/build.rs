//! Compiles the kiosk's Slint UI with its French translation bundled. Debug
//! builds carry the compiler's debug info, which the headless element
//! queries of the tests need.

fn main() {
    let debug_info = std::env::var("PROFILE").as_deref() != Ok("release")
        || std::env::var_os("SLINT_EMIT_DEBUG_INFO").is_some();
    let config = slint_build::CompilerConfiguration::new()
        .with_debug_info(debug_info)
        .with_bundled_translations("../../ui/kiosk/lang");
    slint_build::compile_with_config("../../ui/kiosk/app.slint", config)
        .expect("the kiosk UI compiles");
}
