//! `stoa-wasm-split INPUT.wasm OUT_DIR MAIN.wasm MAIN_JS`
//!
//! Splits the bundle `cargo build` made (linked with `--emit-relocs`) at its split points:
//! writes the main module to MAIN.wasm (for wasm-bindgen), one `.wasm` per lazily loaded
//! chunk and the loader `__wasm_split.______________________.js` to OUT_DIR, and the
//! manifest Leptos reads to preload a lazy route's chunks with its HTML
//! (`__wasm_split_manifest.json`: split point → chunk file names without `.wasm`).
//! MAIN_JS is how the loader imports the main module (`./stoa.js`). Prints the chunks.

use std::path::Path;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() == 2 && args[1] == "--version" {
        println!("stoa-wasm-split {}", env!("CARGO_PKG_VERSION"));
        return;
    }
    let [_, input, out_dir, main_out, main_js] = args.as_slice() else {
        eprintln!("usage: stoa-wasm-split INPUT.wasm OUT_DIR MAIN.wasm MAIN_JS");
        std::process::exit(2);
    };
    if let Err(error) = run(input, out_dir, main_out, main_js) {
        eprintln!("stoa-wasm-split: {error:#}");
        std::process::exit(1);
    }
}

fn run(input: &str, out_dir: &str, main_out: &str, main_js: &str) -> Result<(), Box<dyn std::error::Error>> {
    let wasm = std::fs::read(input).map_err(|e| format!("{input}: {e}"))?;
    let out_dir = Path::new(out_dir);
    std::fs::create_dir_all(out_dir)?;
    let split = wasm_split_cli_support::transform({
        let mut options = wasm_split_cli_support::Options::new(&wasm);
        options.output_dir = out_dir;
        options.main_out_path = Path::new(main_out);
        options.main_module = main_js;
        // The name Leptos' HydrationScripts looks for; the build replaces the underscores
        // with a content hash of the same length.
        options.link_name = "./__wasm_split.______________________.js";
        options
    })
    .map_err(|e| format!("{e:?}"))?;
    let manifest = serde_json::to_string_pretty(&split.prefetch_map)?;
    std::fs::write(out_dir.join("__wasm_split_manifest.json"), manifest)?;
    for chunk in &split.split_modules {
        println!("{}", chunk.display());
    }
    Ok(())
}
