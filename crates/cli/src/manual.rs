//! Manual pages and shell completions, rendered from the clap definition of the CLI itself
//! (`once man`, `once completions SHELL`), so a package built from this binary can never
//! document a flag the binary does not have, nor miss one it has.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};
use clap_complete::Shell;

/// Writes `once.1` and one page per subcommand, the way git does (`once-serve.1`,
/// `once-keys-create.1`, …): `once.1` lists the subcommands and names their pages, and each
/// page carries its own options, so `man once-serve` shows every server setting.
pub fn write_man_pages(command: clap::Command, out_dir: &Path) -> Result<()> {
    std::fs::create_dir_all(out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    clap_mangen::generate_to(command, out_dir)
        .with_context(|| format!("writing manual pages into {}", out_dir.display()))
}

/// Writes the completion script for `shell` (for `once`, as the binary is installed).
pub fn write_completions(
    mut command: clap::Command,
    shell: Shell,
    out: &mut dyn Write,
) -> Result<()> {
    // Rendered first: the generator panics on a failed write (a closed pipe), and this way a
    // failure is an error message like every other command's.
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command, "once", &mut script);
    out.write_all(&script)
        .and_then(|()| out.flush())
        .context("writing the completion script")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Cli;
    use clap::CommandFactory;

    fn completions(shell: Shell) -> String {
        let mut script = Vec::new();
        write_completions(Cli::command(), shell, &mut script).unwrap();
        String::from_utf8(script).unwrap()
    }

    /// How clap_mangen spells a page name in roff: a hyphen is written `\-`.
    fn roff(text: &str) -> String {
        text.replace('-', "\\-")
    }

    /// Checks that the page of `command` (named `page`) lists every visible subcommand of it
    /// with the page of that subcommand, that each such page exists, and so on downwards.
    /// Returns how many subcommand pages it checked.
    fn check_pages(out_dir: &Path, page: &str, command: &clap::Command) -> usize {
        let text = std::fs::read_to_string(out_dir.join(format!("{page}.1")))
            .unwrap_or_else(|error| panic!("no page {page}.1: {error}"));
        let mut checked = 0;
        for subcommand in command.get_subcommands().filter(|sub| !sub.is_hide_set()) {
            let sub_page = format!("{page}-{}", subcommand.get_name());
            assert!(
                text.contains(&roff(&format!("{sub_page}(1)"))),
                "{page}.1 does not mention {sub_page}(1)"
            );
            checked += 1 + check_pages(out_dir, &sub_page, subcommand);
        }
        checked
    }

    #[test]
    fn man_pages_mention_every_subcommand_and_give_each_its_own_page() {
        let out_dir = tempfile::tempdir().unwrap();
        write_man_pages(Cli::command(), out_dir.path()).unwrap();

        // Built as the generator builds it: `help` is no subcommand of a manual page.
        let mut command = Cli::command().disable_help_subcommand(true);
        command.build();
        let checked = check_pages(out_dir.path(), "once", &command);
        // The walk above follows the definition; these pin it to what users know, so an empty
        // or truncated definition cannot pass.
        assert!(checked >= 15, "only {checked} subcommand pages");
        for name in ["serve", "reap", "send", "get", "request", "keys-create"] {
            assert!(out_dir.path().join(format!("once-{name}.1")).exists());
        }
        let serve = std::fs::read_to_string(out_dir.path().join("once-serve.1")).unwrap();
        assert!(serve.contains(&roff("--reap-interval")));
        let main_page = std::fs::read_to_string(out_dir.path().join("once.1")).unwrap();
        assert!(main_page.contains(".TH once 1"));
        // The generator itself is for packagers, not a page of its own.
        assert!(!out_dir.path().join("once-man.1").exists());
        assert!(!main_page.contains(&roff("once-man(1)")));
    }

    #[test]
    fn bash_completions_offer_the_subcommands_and_their_flags() {
        let bash = completions(Shell::Bash);
        assert!(
            bash.contains("complete -F _once"),
            "not a bash completion script"
        );
        for word in ["send", "serve", "request", "--downloads", "--reap-interval"] {
            assert!(bash.contains(word), "bash completions lack {word}");
        }
    }

    #[test]
    fn zsh_and_fish_completions_offer_send() {
        let zsh = completions(Shell::Zsh);
        assert!(zsh.starts_with("#compdef once"));
        assert!(zsh.contains("send"));
        let fish = completions(Shell::Fish);
        assert!(fish.contains("complete -c once"));
        assert!(fish.contains("send"));
    }
}
