//! The VPC Lattice API driven by the AWS SDK for Rust against the built binary.

mod common;

use aws_sdk_vpclattice::error::ProvideErrorMetadata;
use aws_sdk_vpclattice::types::*;
use common::*;

#[tokio::test]
async fn resources_round_trip_through_the_sdk() {
    let dir = tempfile::tempdir().unwrap();
    let t = Trellis::start(dir.path(), &[]);
    let c = t.lattice();

    let sn = c
        .create_service_network()
        .name("travel")
        .send()
        .await
        .unwrap();
    assert!(sn.id().unwrap().starts_with("sn-"));
    assert!(sn
        .arn()
        .unwrap()
        .starts_with("arn:aws:vpc-lattice:us-east-1:000000000000:servicenetwork/sn-"));

    let tg = target_group(&c, "frontend-tg", &["127.0.0.1:9001".parse().unwrap()]).await;
    let got = c
        .get_target_group()
        .target_group_identifier(&tg)
        .send()
        .await
        .unwrap();
    let hc = got.config().unwrap().health_check().unwrap();
    assert_eq!(hc.health_check_interval_seconds(), Some(5));
    assert_eq!(
        hc.matcher().unwrap().as_http_code().unwrap(),
        "200",
        "AWS default matcher"
    );
    assert_eq!(
        got.config().unwrap().protocol_version(),
        Some(&TargetGroupProtocolVersion::Http1)
    );

    let (svc, dns, listener) = service(&c, "frontend", forward(&[(&tg, 100)])).await;
    assert!(dns.starts_with("frontend-"), "{dns}");
    let assoc = c
        .create_service_network_service_association()
        .service_identifier(&svc)
        .service_network_identifier(sn.id().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(
        assoc.status(),
        Some(&ServiceNetworkServiceAssociationStatus::Active)
    );

    let rule = c
        .create_rule()
        .service_identifier(&svc)
        .listener_identifier(&listener)
        .name("beta")
        .priority(10)
        .r#match(RuleMatch::HttpMatch(
            HttpMatch::builder()
                .header_matches(
                    HeaderMatch::builder()
                        .name("x-beta")
                        .r#match(HeaderMatchType::Exact("1".into()))
                        .build()
                        .unwrap(),
                )
                .build(),
        ))
        .action(RuleAction::FixedResponse(
            FixedResponseAction::builder()
                .status_code(418)
                .build()
                .unwrap(),
        ))
        .send()
        .await
        .unwrap();
    let rules = c
        .list_rules()
        .service_identifier(&svc)
        .listener_identifier(&listener)
        .send()
        .await
        .unwrap();
    assert_eq!(rules.items().len(), 1);
    assert_eq!(rules.items()[0].id(), rule.id());

    // Get by ARN as well as by id.
    let by_arn = c
        .get_service()
        .service_identifier(format!(
            "arn:aws:vpc-lattice:us-east-1:000000000000:service/{svc}"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(by_arn.name(), Some("frontend"));
    assert_eq!(by_arn.status(), Some(&ServiceStatus::Active));

    // Tags.
    let arn = by_arn.arn().unwrap().to_string();
    c.tag_resource()
        .resource_arn(&arn)
        .tags("team", "web")
        .send()
        .await
        .unwrap();
    let tags = c
        .list_tags_for_resource()
        .resource_arn(&arn)
        .send()
        .await
        .unwrap();
    assert_eq!(
        tags.tags().unwrap().get("team").map(String::as_str),
        Some("web")
    );

    // Targets are listed with their health status.
    let targets = c
        .list_targets()
        .target_group_identifier(&tg)
        .send()
        .await
        .unwrap();
    assert_eq!(targets.items().len(), 1);
    assert!(targets.items()[0].status().is_some());

    // Deleting a target group in use is a conflict; so is a second service of the same name.
    let err = c
        .delete_target_group()
        .target_group_identifier(&tg)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("ConflictException"));
    let err = c
        .create_service()
        .name("frontend")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("ConflictException"));
}

#[tokio::test]
async fn bad_input_gets_aws_errors_naming_each_field() {
    let dir = tempfile::tempdir().unwrap();
    let t = Trellis::start(dir.path(), &[]);
    let c = t.lattice();

    let err = c
        .create_target_group()
        .name("-Bad")
        .r#type(TargetGroupType::Ip)
        .config(TargetGroupConfig::builder().port(70000).build())
        .send()
        .await
        .unwrap_err();
    let service_err = err.into_service_error();
    let aws_sdk_vpclattice::types::error::ValidationException { field_list, reason, .. } = match service_err {
        aws_sdk_vpclattice::operation::create_target_group::CreateTargetGroupError::ValidationException(v) => v,
        other => panic!("expected ValidationException, got {other:?}"),
    };
    assert_eq!(reason, ValidationExceptionReason::FieldValidationFailed);
    let names: Vec<&str> = field_list
        .as_deref()
        .unwrap_or_default()
        .iter()
        .map(|f| f.name())
        .collect();
    assert!(names.contains(&"name"), "{names:?}");
    assert!(names.contains(&"config.port"), "{names:?}");

    let err = c
        .get_service()
        .service_identifier("svc-0123456789abcdef0")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("ResourceNotFoundException"));

    // Nothing was created by the failed call.
    assert!(c
        .list_target_groups()
        .send()
        .await
        .unwrap()
        .items()
        .is_empty());
}

#[tokio::test]
async fn pagination_and_client_token_idempotency() {
    let dir = tempfile::tempdir().unwrap();
    let t = Trellis::start(dir.path(), &[]);
    let c = t.lattice();
    for i in 0..5 {
        c.create_service_network()
            .name(format!("net-{i}"))
            .send()
            .await
            .unwrap();
    }
    let mut names = Vec::new();
    let mut token = None;
    loop {
        let page = c
            .list_service_networks()
            .max_results(2)
            .set_next_token(token)
            .send()
            .await
            .unwrap();
        assert!(page.items().len() <= 2);
        names.extend(page.items().iter().map(|i| i.name().unwrap().to_string()));
        token = page.next_token().map(str::to_string);
        if token.is_none() {
            break;
        }
    }
    assert_eq!(names, ["net-0", "net-1", "net-2", "net-3", "net-4"]);

    let a = c
        .create_service()
        .name("idem")
        .client_token("tok-1")
        .send()
        .await
        .unwrap();
    let b = c
        .create_service()
        .name("idem")
        .client_token("tok-1")
        .send()
        .await
        .unwrap();
    assert_eq!(
        a.id(),
        b.id(),
        "a retry with the same token gets the first answer"
    );
    let err = c
        .create_service()
        .name("other")
        .client_token("tok-1")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("ConflictException"));
    assert_eq!(c.list_services().send().await.unwrap().items().len(), 1);
}

#[tokio::test]
async fn resources_survive_kill_9_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let echo = Echo::start("one").await;
    let (svc, dns);
    {
        let mut t = Trellis::start(dir.path(), &[]);
        let c = t.lattice();
        let tg = target_group(&c, "durable-tg", &[echo.addr]).await;
        (svc, dns, _) = service(&c, "durable", forward(&[(&tg, 100)])).await;
        assert_eq!(get(t.listen, &dns, "/").await.upstream(), "one");
        t.kill9();
    }
    let t = Trellis::start(dir.path(), &[]);
    let c = t.lattice();
    let got = c
        .get_service()
        .service_identifier(&svc)
        .send()
        .await
        .unwrap();
    assert_eq!(got.name(), Some("durable"));
    assert_eq!(
        c.list_listeners()
            .service_identifier(&svc)
            .send()
            .await
            .unwrap()
            .items()
            .len(),
        1
    );
    assert_eq!(
        c.list_target_groups().send().await.unwrap().items().len(),
        1
    );
    assert_eq!(
        get(t.listen, &dns, "/").await.upstream(),
        "one",
        "the data plane routes again after restart"
    );
}
