//! `ssehub completions SHELL`: a completion script for bash, zsh or fish, printed to stdout,
//! generated from the same clap definitions the parser uses so it never lists a flag the
//! binary does not take.

use std::io::Write as _;

use clap::CommandFactory as _;
use clap_complete::Shell;

/// Arguments of `ssehub completions`.
#[derive(clap::Args, Debug)]
#[command(after_help = "Install, for example:\n  \
    bash: ssehub completions bash > /etc/bash_completion.d/ssehub\n  \
    zsh:  ssehub completions zsh > \"${fpath[1]}/_ssehub\"\n  \
    fish: ssehub completions fish > ~/.config/fish/completions/ssehub.fish")]
pub(crate) struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    shell: CompletionShell,
}

/// The shells with a script; a subset of clap_complete's so the help lists only what is tested.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum CompletionShell {
    Bash,
    Zsh,
    Fish,
}

impl From<CompletionShell> for Shell {
    fn from(shell: CompletionShell) -> Self {
        match shell {
            CompletionShell::Bash => Shell::Bash,
            CompletionShell::Zsh => Shell::Zsh,
            CompletionShell::Fish => Shell::Fish,
        }
    }
}

/// Prints the script for `args.shell`.
pub(crate) fn run(args: CompletionsArgs) -> anyhow::Result<()> {
    let mut cmd = super::Cli::command();
    let mut out = std::io::stdout().lock();
    clap_complete::generate(Shell::from(args.shell), &mut cmd, "ssehub", &mut out);
    out.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    use clap::CommandFactory as _;
    use clap_complete::Shell;

    use super::super::Cli;

    fn script(shell: Shell) -> String {
        let mut out = Vec::new();
        clap_complete::generate(shell, &mut Cli::command(), "ssehub", &mut out);
        String::from_utf8(out).unwrap()
    }

    /// Every visible subcommand with its visible long flags, from the parser's own definitions.
    fn surface() -> Vec<(String, Vec<String>)> {
        let mut cmd = Cli::command();
        cmd.build();
        cmd.get_subcommands()
            .filter(|s| !s.is_hide_set() && s.get_name() != "help")
            .map(|s| {
                let flags = s
                    .get_arguments()
                    .filter(|a| !a.is_hide_set())
                    .filter_map(|a| a.get_long().map(str::to_owned))
                    .collect();
                (s.get_name().to_owned(), flags)
            })
            .collect()
    }

    #[test]
    fn every_script_names_every_subcommand_and_flag() {
        let surface = surface();
        let names: Vec<&str> = surface.iter().map(|(n, _)| n.as_str()).collect();
        for want in [
            "serve",
            "listen",
            "parse",
            "publish",
            "token",
            "config",
            "completions",
        ] {
            assert!(names.contains(&want), "{want} missing from {names:?}");
        }
        assert!(!names.contains(&"man"), "the man page generator is hidden");
        let serve_flags = &surface.iter().find(|(n, _)| n == "serve").unwrap().1;
        assert!(
            serve_flags.len() > 30,
            "serve has its flags: {serve_flags:?}"
        );
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
            let text = script(shell);
            for (sub, flags) in &surface {
                assert!(text.contains(sub.as_str()), "{shell}: no {sub}");
                for flag in flags {
                    // fish writes `-l listen`, bash and zsh `--listen`.
                    let found = match shell {
                        Shell::Fish => text.lines().any(|l| {
                            // `{sub};` where the subcommand has its own (`config check`).
                            (l.contains(&format!("__fish_ssehub_using_subcommand {sub}\""))
                                || l.contains(&format!("__fish_ssehub_using_subcommand {sub};")))
                                && (l.contains(&format!("-l {flag} "))
                                    || l.ends_with(&format!("-l {flag}")))
                        }),
                        _ => text.contains(&format!("--{flag}")),
                    };
                    assert!(found, "{shell}: no --{flag} of {sub}");
                }
            }
        }
    }

    /// The scripts are valid for their shells: `bash -n` always (bash is on every machine that
    /// runs the tests), `zsh -n` and `fish -n` where installed.
    #[test]
    fn the_shells_parse_their_scripts() {
        let dir = tempfile::tempdir().unwrap();
        for (shell, program, required) in [
            (Shell::Bash, "bash", true),
            (Shell::Zsh, "zsh", false),
            (Shell::Fish, "fish", false),
        ] {
            let path = dir.path().join(format!("ssehub.{program}"));
            std::fs::write(&path, script(shell)).unwrap();
            let out = match Command::new(program).arg("-n").arg(&path).output() {
                Ok(out) => out,
                Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => panic!("running {program}: {e}"),
            };
            assert!(
                out.status.success(),
                "{program} -n: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}
