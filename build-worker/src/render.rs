//! Writing a build's rendered files (`kiln_common::templating::render_set`) into its
//! source tree, `KILN_GENERATED_DIR/<workspace>/<application>/<build>/`, refusing paths
//! through symlinks.

use std::path::{Path, PathBuf};

pub use kiln_common::templating::RenderedFile;

/// Writes `files` into `base/tree` (made fresh), refusing any path through a symlink:
/// the tree's own directories (`<workspace>/<application>/<build>`) and every file's.
pub fn write_tree(base: &Path, tree: &Path, files: &[RenderedFile]) -> anyhow::Result<PathBuf> {
    let through_symlink = |relative: &Path| {
        let mut at = base.to_path_buf();
        relative.iter().any(|part| {
            at.push(part);
            at.symlink_metadata().is_ok_and(|meta| meta.file_type().is_symlink())
        })
    };
    if through_symlink(tree) {
        anyhow::bail!("{} goes through a symlink", base.join(tree).display());
    }
    let root = base.join(tree);
    if root.exists() {
        std::fs::remove_dir_all(&root)?;
    }
    std::fs::create_dir_all(&root)?;
    for file in files {
        if through_symlink(&tree.join(&file.path)) {
            anyhow::bail!("{} goes through a symlink", file.path.display());
        }
        let target = root.join(&file.path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&target, &file.content)?;
    }
    Ok(root)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tree_through_a_symlink_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (base, outside) = (dir.path().join("generated"), dir.path().join("outside"));
        std::fs::create_dir_all(&base).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        let file = RenderedFile { path: "src/a.rs".into(), content: "a".into() };
        let root = write_tree(&base, Path::new("ws/app/1"), std::slice::from_ref(&file)).unwrap();
        assert_eq!(std::fs::read_to_string(root.join("src/a.rs")).unwrap(), "a");
        std::os::unix::fs::symlink(&outside, base.join("ws2")).unwrap();
        let error = write_tree(&base, Path::new("ws2/app/1"), &[file]).unwrap_err();
        assert!(error.to_string().contains("symlink"), "{error}");
        assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);
    }
}
