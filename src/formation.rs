//! The formation, as foreman has it: how many instances of each process run
//! (`-m web=2,worker=3`, `all=N`, the `instances=N` note), what each one is
//! called, and the `PS` and `PORT` it gets.

/// The most instances of one process herd runs. `--port-base` gives the
/// processes blocks of 100 ports (foreman's scheme), so a 101st instance
/// would get the first port of the next process.
pub const MAX_INSTANCES: u32 = 100;

/// What `-m/--formation` asked for, over every time it was given.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Formation {
    /// `all=N`: the count of every process not named.
    pub all: Option<u32>,
    /// `NAME=N`, in the order given.
    pub counts: Vec<(String, u32)>,
}

impl Formation {
    /// Adds one `-m` value: `NAME=N[,NAME=N...]`, spaces around the parts
    /// allowed. A name (or `all`) given twice, here or in an earlier `-m`,
    /// is refused: one of them would be ignored.
    pub fn add(&mut self, text: &str) -> Result<(), String> {
        for entry in text.split(',') {
            let entry = entry.trim();
            if entry.is_empty() {
                return Err(format!("'{text}' has an empty entry (NAME=N[,NAME=N...])"));
            }
            let (name, count) = entry
                .split_once('=')
                .ok_or_else(|| format!("'{entry}' is not NAME=N"))?;
            let (name, count) = (name.trim(), count.trim());
            crate::spec::check_name(name)?;
            if count.is_empty() {
                return Err(format!("'{entry}' needs a count: {name}=N"));
            }
            let count = parse_count(count)?;
            let given_before = if name == "all" {
                self.all.replace(count).is_some()
            } else if self.counts.iter().any(|(known, _)| known == name) {
                true
            } else {
                self.counts.push((name.to_string(), count));
                false
            };
            if given_before {
                return Err(format!("'{name}' is given twice"));
            }
        }
        Ok(())
    }

    /// How many instances of the process `name` run, whose Procfile note
    /// asks for `note` (1 without a note): its own `-m` count, else `all=`,
    /// else the note; the command line overrides the file.
    pub fn count(&self, name: &str, note: u32) -> u32 {
        self.counts
            .iter()
            .find(|(known, _)| known == name)
            .map(|&(_, count)| count)
            .or(self.all)
            .unwrap_or(note)
    }
}

/// A count of instances: 0 to [`MAX_INSTANCES`], digits only.
pub fn parse_count(text: &str) -> Result<u32, String> {
    let digits = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
    if !digits {
        return Err(format!(
            "'{text}' is not a number of instances (0 to {MAX_INSTANCES})"
        ));
    }
    // Digits that do not fit are more than the bound all the same.
    match text.parse::<u32>() {
        Ok(count) if count <= MAX_INSTANCES => Ok(count),
        _ => Err(format!(
            "'{text}' is more than {MAX_INSTANCES} instances, the most herd runs of one process"
        )),
    }
}

/// The name herd gives instance `index` (from 1) of `count` instances of
/// `family`: `web.1`, `web.2`...; the only instance keeps the plain name,
/// so that a Procfile without a formation behaves as it always did.
pub fn instance_name(family: &str, index: u32, count: u32) -> String {
    if count == 1 {
        family.to_string()
    } else {
        format!("{family}.{index}")
    }
}

/// `PS`, as foreman sets it: `web.1` even for the only instance.
pub fn ps(family: &str, index: u32) -> String {
    format!("{family}.{index}")
}

/// `PORT` as foreman computes it: `base + 100 * position + index - 1` for
/// instance `index` (from 1) of the process at `position` (from 0, in the
/// order processes were given, counting those with no instance). It may be
/// past 65535, for the caller to refuse.
pub fn port(base: u16, position: usize, index: u32) -> u64 {
    let position = u64::try_from(position).unwrap_or(u64::MAX);
    u64::from(base)
        .saturating_add(position.saturating_mul(100))
        .saturating_add(u64::from(index.saturating_sub(1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn formation(values: &[&str]) -> Result<Formation, String> {
        let mut formation = Formation::default();
        for value in values {
            formation.add(value)?;
        }
        Ok(formation)
    }

    #[test]
    fn reads_names_counts_and_all() {
        let f = formation(&["web=2,worker=3", " clock = 0 , all=4"]).unwrap();
        assert_eq!(f.all, Some(4));
        assert_eq!(
            f.counts,
            [("web".into(), 2), ("worker".into(), 3), ("clock".into(), 0)]
        );
        assert_eq!(f.count("web", 1), 2);
        assert_eq!(f.count("clock", 7), 0);
        assert_eq!(f.count("other", 7), 4);
    }

    #[test]
    fn the_command_line_overrides_the_note() {
        let note = 5;
        assert_eq!(formation(&[]).unwrap().count("web", note), 5);
        assert_eq!(formation(&["all=2"]).unwrap().count("web", note), 2);
        assert_eq!(formation(&["all=2,web=3"]).unwrap().count("web", note), 3);
        assert_eq!(formation(&["worker=3"]).unwrap().count("web", note), 5);
    }

    #[test]
    fn takes_counts_up_to_the_bound() {
        assert_eq!(parse_count("0"), Ok(0));
        assert_eq!(parse_count("100"), Ok(MAX_INSTANCES));
        assert_eq!(parse_count("007"), Ok(7));
    }

    #[test]
    fn refuses_bad_formations_with_a_reason() {
        for (values, why) in [
            (
                &["web=-1"][..],
                "'-1' is not a number of instances (0 to 100)",
            ),
            (&["web=+2"], "'+2' is not a number of instances"),
            (&["web=two"], "'two' is not a number of instances"),
            (&["web=1.5"], "'1.5' is not a number of instances"),
            (&["web=101"], "'101' is more than 100 instances"),
            (
                &["web=99999999999999999999999"],
                "'99999999999999999999999' is more than 100 instances",
            ),
            (&["web="], "'web=' needs a count: web=N"),
            (&["web= "], "'web=' needs a count"),
            (&["=2"], "'' is not a valid name"),
            (&["web"], "'web' is not NAME=N"),
            (&["a b=2"], "'a b' is not a valid name"),
            (&["../x=2"], "'../x' is not a valid name"),
            (&[""], "'' has an empty entry"),
            (&["web=2,"], "'web=2,' has an empty entry"),
            (&["web=2,,worker=1"], "has an empty entry"),
            (&["web=2,web=3"], "'web' is given twice"),
            (&["web=2", "web=2"], "'web' is given twice"),
            (&["all=1,all=2"], "'all' is given twice"),
            (&["all=1", "web=1,all=1"], "'all' is given twice"),
        ] {
            assert_eq!(
                formation(values).map_err(|e| e.contains(why)),
                Err(true),
                "{values:?}: {:?}",
                formation(values)
            );
        }
    }

    #[test]
    fn names_an_instance_by_its_index_unless_it_is_alone() {
        assert_eq!(instance_name("web", 1, 1), "web");
        assert_eq!(instance_name("web", 1, 2), "web.1");
        assert_eq!(instance_name("web", 100, 100), "web.100");
        assert_eq!(ps("web", 1), "web.1");
        assert_eq!(ps("worker.a", 3), "worker.a.3");
    }

    #[test]
    fn computes_ports_as_foreman_does() {
        assert_eq!(port(5000, 0, 1), 5000);
        assert_eq!(port(5000, 0, 2), 5001);
        assert_eq!(port(5000, 1, 1), 5100);
        assert_eq!(port(5000, 2, 3), 5202);
        assert_eq!(port(65000, 5, 36), 65535);
        assert_eq!(port(65000, 5, 37), 65536);
        assert_eq!(port(1, usize::MAX, 1), u64::MAX);
    }
}
