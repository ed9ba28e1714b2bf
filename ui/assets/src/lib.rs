//! The web UI's files, built from `ui/` when this crate builds (see `build.rs`) and
//! embedded in the binary: nothing to install or copy next to it. Content-addressed names
//! (`kiln-ui-<hash>.js`) let browsers keep those files for good; `index.html`, which names
//! them, is asked for again on every load.

/// One file of the bundle.
#[derive(Debug, Clone, Copy)]
pub struct Asset {
    /// Path below the site's root, without the leading slash.
    pub path: &'static str,
    pub content_type: &'static str,
    pub body: &'static [u8],
    /// The same bytes, gzipped at build time.
    pub gzip: &'static [u8],
    /// Whether the name changes with the content (so it may be cached for good).
    pub immutable: bool,
}

include!(concat!(env!("OUT_DIR"), "/assets.rs"));

/// The bundle's files.
pub fn assets() -> &'static [Asset] {
    ASSETS
}

/// The file at `path` (without the leading slash), if the bundle has it.
pub fn find(path: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|asset| asset.path == path)
}

/// The page every route of the app loads (the app routes in the browser).
pub fn index() -> &'static Asset {
    find("index.html").expect("the bundle always has index.html")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_names_the_hashed_script_and_every_file_is_gzipped() {
        let page = std::str::from_utf8(index().body).unwrap();
        let script = assets().iter().find(|a| a.path.ends_with(".js")).expect("a script");
        let wasm = assets().iter().find(|a| a.path.ends_with(".wasm")).expect("a wasm module");
        assert!(page.contains(&format!("/{}", script.path)), "{page}");
        assert!(page.contains(&format!("/{}", wasm.path)), "{page}");
        assert!(script.immutable && wasm.immutable && !index().immutable);
        for asset in assets() {
            let mut unzipped = Vec::new();
            std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(asset.gzip), &mut unzipped).unwrap();
            assert_eq!(unzipped, asset.body, "{}", asset.path);
        }
    }
}
