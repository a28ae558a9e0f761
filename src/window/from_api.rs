//! Turning `spec.changeWindows` (and the operator's default window) into compiled [`Windows`].

use std::str::FromStr;

use super::{Gate, WindowError, WindowKind, WindowSpec, Windows};
use crate::api::{ChangeWindow, WindowGate};

/// The windows that govern an application: its own, or the operator default when it has none.
pub fn for_application(own: &[ChangeWindow], operator_default: &[ChangeWindow]) -> Result<Windows, String> {
    let windows = if own.is_empty() { operator_default } else { own };
    let specs = windows.iter().enumerate().map(|(i, w)| to_spec(i, w)).collect::<Result<Vec<_>, _>>()?;
    Windows::compile(&specs).map_err(|e: WindowError| e.to_string())
}

fn to_spec(index: usize, window: &ChangeWindow) -> Result<WindowSpec, String> {
    let duration = window.duration.parse().map_err(|e| format!("changeWindows[{index}].duration: {e}"))?;
    Ok(WindowSpec {
        kind: match window.kind {
            crate::api::WindowKind::Allow => WindowKind::Allow,
            crate::api::WindowKind::Deny => WindowKind::Deny,
        },
        schedule: window.schedule.clone(),
        duration,
        time_zone: window.time_zone.clone(),
        gates: window
            .gates
            .iter()
            .map(|g| match g {
                WindowGate::Restart => Gate::Restart,
                WindowGate::Apply => Gate::Apply,
            })
            .collect(),
    })
}

/// A window written on the command line: `KIND;SCHEDULE;DURATION;TIME_ZONE[;GATES]`, e.g.
/// `allow;0 22 * * 1-5;4h;Europe/Berlin` or `deny;0 12 * * *;1h;UTC;Restart`.
#[derive(Debug, Clone, PartialEq)]
pub struct CliWindow(pub ChangeWindow);

impl FromStr for CliWindow {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = text.split(';').map(str::trim).collect();
        let [kind, schedule, duration, time_zone, rest @ ..] = parts.as_slice() else {
            return Err(format!("{text:?} is not KIND;SCHEDULE;DURATION;TIME_ZONE[;GATES]"));
        };
        let kind = match *kind {
            "allow" => crate::api::WindowKind::Allow,
            "deny" => crate::api::WindowKind::Deny,
            other => return Err(format!("window kind {other:?} is not allow or deny")),
        };
        let gates = match rest {
            [] => vec![WindowGate::Restart, WindowGate::Apply],
            [gates] => gates
                .split(',')
                .map(|g| match g.trim() {
                    "Restart" => Ok(WindowGate::Restart),
                    "Apply" => Ok(WindowGate::Apply),
                    other => Err(format!("gate {other:?} is not Restart or Apply")),
                })
                .collect::<Result<_, _>>()?,
            _ => return Err(format!("{text:?} has too many ';' fields")),
        };
        let window = ChangeWindow {
            kind,
            schedule: (*schedule).to_owned(),
            duration: crate::api::DurationString::new(*duration),
            time_zone: (*time_zone).to_owned(),
            gates,
        };
        // Check it now, so a bad flag stops the operator at start instead of stalling every application.
        for_application(std::slice::from_ref(&window), &[])?;
        Ok(Self(window))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line_windows_parse_and_are_checked() {
        let window: CliWindow = "allow;0 22 * * 1-5;4h;Europe/Berlin".parse().expect("valid");
        assert_eq!(window.0.gates, [WindowGate::Restart, WindowGate::Apply]);
        let restart_only: CliWindow = "deny;0 12 * * *;1h;UTC;Restart".parse().expect("valid");
        assert_eq!(restart_only.0.gates, [WindowGate::Restart]);
        assert!("allow;0 22 * * 1-5;4h".parse::<CliWindow>().is_err());
        assert!("maybe;0 22 * * *;4h;UTC".parse::<CliWindow>().is_err());
        let unknown_zone = "allow;0 22 * * *;4h;Mars/Olympus".parse::<CliWindow>().unwrap_err();
        assert!(unknown_zone.contains("Mars/Olympus"), "{unknown_zone}");
    }

    #[test]
    fn own_windows_replace_the_operator_default() {
        let default: CliWindow = "deny;* * * * *;1m;UTC".parse().expect("valid");
        let always_denied = for_application(&[], std::slice::from_ref(&default.0)).expect("compiles");
        assert!(!always_denied.is_empty());
        let own: CliWindow = "allow;* * * * *;1m;UTC".parse().expect("valid");
        let windows =
            for_application(std::slice::from_ref(&own.0), std::slice::from_ref(&default.0)).expect("compiles");
        assert_eq!(windows.evaluate(jiff::Timestamp::UNIX_EPOCH, Gate::Apply), super::super::Decision::Open);
    }
}
