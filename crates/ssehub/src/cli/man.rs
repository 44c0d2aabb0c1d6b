//! `ssehub man [--out DIR]` (hidden): manual pages rendered from the clap definitions, for
//! packagers. With `--out`, writes `ssehub.1` and one `ssehub-SUBCOMMAND.1` per visible
//! subcommand; without, prints `ssehub.1` to stdout (`ssehub man | man -l -`).

use std::io::Write as _;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::CommandFactory as _;

/// Arguments of `ssehub man`.
#[derive(clap::Args, Debug)]
pub(crate) struct ManArgs {
    /// Directory to write every page into (created if missing).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
}

/// Renders the pages.
pub(crate) fn run(args: ManArgs) -> anyhow::Result<()> {
    let cmd = super::Cli::command();
    match args.out {
        Some(dir) => {
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            clap_mangen::generate_to(cmd, &dir)
                .with_context(|| format!("writing manual pages into {}", dir.display()))?;
        }
        None => {
            let mut out = std::io::stdout().lock();
            clap_mangen::Man::new(cmd).render(&mut out)?;
            out.flush()?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    use clap::CommandFactory as _;

    use super::super::Cli;

    #[test]
    fn one_page_per_subcommand_each_listing_its_flags() {
        let dir = tempfile::tempdir().unwrap();
        super::run(super::ManArgs {
            out: Some(dir.path().join("man1")),
        })
        .unwrap();
        let pages = dir.path().join("man1");
        let mut cmd = Cli::command();
        cmd.build();
        let main = std::fs::read_to_string(pages.join("ssehub.1")).unwrap();
        assert!(
            main.starts_with(".ie"),
            "roff: {}",
            &main[..80.min(main.len())]
        );
        assert!(main.contains(".TH ssehub 1"));
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
            let name = sub.get_name();
            if name == "help" {
                continue;
            }
            let page = std::fs::read_to_string(pages.join(format!("ssehub-{name}.1")))
                .unwrap_or_else(|e| panic!("ssehub-{name}.1: {e}"));
            assert!(
                main.contains(&format!("ssehub\\-{name}(1)")),
                "ssehub.1 links {name}"
            );
            for section in [".SH NAME", ".SH SYNOPSIS", ".SH DESCRIPTION", ".SH OPTIONS"] {
                assert!(page.contains(section), "ssehub-{name}.1 has no {section}");
            }
            for arg in sub.get_arguments().filter(|a| !a.is_hide_set()) {
                if let Some(long) = arg.get_long() {
                    let roff = format!("\\fB\\-\\-{}\\fR", long.replace('-', "\\-"));
                    assert!(page.contains(&roff), "ssehub-{name}.1 has no --{long}");
                }
            }
        }
        assert!(
            !pages.join("ssehub-man.1").exists(),
            "the hidden generator has no page"
        );
    }

    /// The page renders without a warning where groff is installed (it is on Debian with man-db),
    /// and `man -l` shows its sections.
    #[test]
    fn the_serve_page_renders() {
        let dir = tempfile::tempdir().unwrap();
        super::run(super::ManArgs {
            out: Some(dir.path().to_owned()),
        })
        .unwrap();
        let page = dir.path().join("ssehub-serve.1");
        match Command::new("groff")
            .args(["-man", "-Tutf8", "-ww", "-z"])
            .arg(&page)
            .output()
        {
            Ok(out) => {
                assert!(out.status.success());
                assert_eq!(String::from_utf8_lossy(&out.stderr), "", "groff warnings");
            }
            Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::NotFound, "groff: {e}"),
        }
        if let Ok(out) = Command::new("man")
            .arg("-l")
            .arg(&page)
            .env("MANPAGER", "cat")
            .env("MANWIDTH", "100")
            .output()
        {
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let text = String::from_utf8_lossy(&out.stdout);
            for heading in ["NAME", "SYNOPSIS", "OPTIONS", "SSEHUB_LISTEN"] {
                assert!(text.contains(heading), "man -l shows no {heading}:\n{text}");
            }
        }
    }
}
