//! Query-string and form parsing tables.

use tugboat::api::QueryParameter;
use tugboat::trigger::query::{
    QueryError, RolloutRestart, Workload, WorkloadKind, check_unsigned_query, parse_form, parse_query,
};

fn workload(kind: WorkloadKind, name: &str) -> Workload {
    Workload { kind, name: name.into() }
}

#[test]
fn accepted_queries() {
    let p = parse_query(None).unwrap_or_default();
    assert_eq!(p, Default::default());
    assert_eq!(parse_query(Some("")), Ok(Default::default()));

    let p = parse_query(Some("rollout-restart=all&tag=v1.2.3&override-window=true&SERVICE_TAG=v%2B1&_x=a+b&EMPTY="));
    let p = p.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(p.rollout_restart, Some(RolloutRestart::All));
    assert_eq!(p.tag.as_deref(), Some("v1.2.3"));
    assert!(p.override_window);
    let vars: Vec<_> = p.variables.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    assert_eq!(vars, [("EMPTY", ""), ("SERVICE_TAG", "v+1"), ("_x", "a b")]);

    let p = parse_query(Some("rollout-restart=Deployment/web,daemonset/agent,STATEFULSET/db.main,deployment/web"));
    assert_eq!(
        p.map(|p| p.rollout_restart),
        Ok(Some(RolloutRestart::Workloads(vec![
            workload(WorkloadKind::Deployment, "web"),
            workload(WorkloadKind::DaemonSet, "agent"),
            workload(WorkloadKind::StatefulSet, "db.main"),
        ])))
    );
    assert_eq!(parse_query(Some("override-window=FALSE&&")).map(|p| p.override_window), Ok(false));
    assert_eq!(parse_query(Some("GREETING=h%C3%A9llo")).map(|p| p.variables["GREETING"].clone()), Ok("héllo".into()));
}

#[test]
fn refused_queries_name_the_culprit() {
    let long = format!("V={}", "x".repeat(4097));
    let many: String = (0..65).map(|i| format!("V{i}=1&")).collect();
    let rows: Vec<(&str, QueryError)> = vec![
        ("rollout-restart=job/x", QueryError::BadRestart("job/x".into())),
        ("rollout-restart=deployment/a,pod/b", QueryError::BadRestart("pod/b".into())),
        ("rollout-restart=deployment/", QueryError::BadRestart("deployment/".into())),
        ("rollout-restart=deployment/Web", QueryError::BadRestart("deployment/Web".into())),
        ("rollout-restart=deployment/a,,deployment/b", QueryError::BadRestart("".into())),
        ("rollout-restart=", QueryError::BadRestart("".into())),
        ("tag=", QueryError::BadTag("".into())),
        ("tag=.v1", QueryError::BadTag(".v1".into())),
        ("tag=v1:latest", QueryError::BadTag("v1:latest".into())),
        ("override-window=yes", QueryError::BadOverride("yes".into())),
        ("1ABC=x", QueryError::BadName("1ABC".into())),
        ("A-B=x", QueryError::BadName("A-B".into())),
        ("=x", QueryError::BadName("".into())),
        ("A=1&A=2", QueryError::Repeated("A".into())),
        ("tag=a&tag=b", QueryError::Repeated("tag".into())),
        ("rollout-restart=all&rollout-restart=all", QueryError::Repeated("rollout-restart".into())),
        ("A=%FF", QueryError::BadEncoding { name: "A".into() }),
        ("A=%zz", QueryError::BadEncoding { name: "A".into() }),
        ("A=%4", QueryError::BadEncoding { name: "A".into() }),
        ("%C3=x", QueryError::BadEncoding { name: "%C3".into() }),
        (long.as_str(), QueryError::ValueTooLong("V".into())),
        (many.as_str(), QueryError::TooManyVariables),
    ];
    for (raw, expected) in rows {
        assert_eq!(parse_query(Some(raw)), Err(expected), "{raw:.60}");
    }
    assert!(parse_query(Some(&format!("tag={}", "a".repeat(128)))).is_ok());
    assert_eq!(parse_query(Some(&format!("tag={}", "a".repeat(129)))), Err(QueryError::BadTag("a".repeat(129))));
}

#[test]
fn form_bodies() {
    assert_eq!(parse_form(b"").map(|m| m.len()), Ok(0));
    let form = parse_form(b"submit=Deploy+now&note=%E2%9C%93&flag");
    let form = form.unwrap_or_default();
    assert_eq!(form.get("submit").map(String::as_str), Some("Deploy now"));
    assert_eq!(form.get("note").map(String::as_str), Some("✓"));
    assert_eq!(form.get("flag").map(String::as_str), Some(""));
    assert_eq!(parse_form(b"a=1&a=2"), Err(QueryError::Repeated("a".into())));
    assert_eq!(parse_form(b"a=\xff"), Err(QueryError::BadEncoding { name: "a".into() }));
    let many: String = (0..65).map(|i| format!("f{i}=1&")).collect();
    assert_eq!(parse_form(many.as_bytes()), Err(QueryError::TooManyFields));
}

/// Providers that sign only the body: the query carries only what the Webhook lists.
#[test]
fn an_unsigned_query_carries_only_listed_parameters() {
    let unsigned = |query: &str, variables: Option<&[String]>, parameters: &[QueryParameter]| {
        let params = parse_query(Some(query)).unwrap_or_else(|e| panic!("{e}"));
        check_unsigned_query(&params, variables, parameters).map_err(|e| e.to_string())
    };
    let listed = ["SERVICE_TAG".to_owned()];
    assert_eq!(unsigned("", None, &[]), Ok(()));
    assert_eq!(unsigned("override-window=false", None, &[]), Ok(()), "false asks for nothing");
    for (query, parameter, field) in [
        ("tag=v1", "tag", "allowQueryParameters"),
        ("rollout-restart=all", "rollout-restart", "allowQueryParameters"),
        ("override-window=true", "override-window", "allowQueryParameters"),
        ("SERVICE_TAG=x", "SERVICE_TAG", "allowedVariables"),
    ] {
        let error = unsigned(query, None, &[]).expect_err(query);
        assert!(error.contains(&format!("{parameter:?}")) && error.contains(field), "{query}: {error}");
    }
    assert_eq!(
        unsigned("tag=v1&rollout-restart=all", None, &[QueryParameter::Tag, QueryParameter::RolloutRestart]),
        Ok(())
    );
    assert_eq!(unsigned("SERVICE_TAG=x", Some(&listed), &[]), Ok(()));
    assert!(unsigned("SERVICE_TAG=x&OTHER=y", Some(&listed), &[]).is_err_and(|e| e.contains("\"OTHER\"")));
    assert!(matches!(
        check_unsigned_query(&parse_query(Some("tag=v1")).unwrap_or_default(), None, &[QueryParameter::RolloutRestart]),
        Err(QueryError::Unsigned { field: "allowQueryParameters", .. })
    ));
}
