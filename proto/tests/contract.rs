//! Checks on the contract itself: every service and RPC is documented, and messages
//! round-trip through the proto3 JSON mapping.

use prost::Message;
use prost_types::FileDescriptorSet;

#[test]
fn every_service_and_rpc_has_a_comment() {
    let set = FileDescriptorSet::decode(kiln_proto::FILE_DESCRIPTOR_SET).unwrap();
    let mut checked = 0;
    for file in set.file.iter().filter(|f| f.package() == "kiln.v1") {
        let locations = &file.source_code_info.as_ref().expect("source info is kept").location;
        let documented = |path: &[i32]| {
            locations
                .iter()
                .any(|l| l.path == path && l.leading_comments.as_deref().is_some_and(|c| !c.trim().is_empty()))
        };
        for (s, service) in file.service.iter().enumerate() {
            // 6 = FileDescriptorProto.service, 2 = ServiceDescriptorProto.method
            assert!(documented(&[6, s as i32]), "service {} has no comment", service.name());
            for (m, method) in service.method.iter().enumerate() {
                assert!(documented(&[6, s as i32, 2, m as i32]), "{}.{} has no comment", service.name(), method.name());
                checked += 1;
            }
        }
    }
    assert!(checked > 40, "only {checked} RPCs found");
}

#[test]
fn every_design_service_is_in_the_contract() {
    let set = FileDescriptorSet::decode(kiln_proto::FILE_DESCRIPTOR_SET).unwrap();
    let services: Vec<&str> = set.file.iter().flat_map(|f| f.service.iter().map(|s| s.name())).collect();
    for name in [
        "AuthService",
        "ModelService",
        "EntityService",
        "ApplicationService",
        "TemplateService",
        "WorkflowService",
        "PromptService",
        "BuildService",
    ] {
        assert!(services.contains(&name), "{name} missing");
    }
}

#[test]
fn json_follows_the_proto3_mapping() {
    use kiln_proto::v1::{Field, TokenPair};
    let tokens = TokenPair { access_token: "a".into(), expires_in: 900, ..Default::default() };
    let json = serde_json::to_value(&tokens).unwrap();
    // Proto field names, defaults emitted, 64-bit integers as strings.
    assert_eq!(json["access_token"], "a");
    assert_eq!(json["expires_in"], "900");
    assert_eq!(json["refresh_token"], "");
    // Either name form and either integer form is read.
    let read: TokenPair = serde_json::from_str(r#"{"accessToken":"b","expires_in":60}"#).unwrap();
    assert_eq!((read.access_token.as_str(), read.expires_in), ("b", 60));

    let field: Field =
        serde_json::from_str(r#"{"name":"amount","type":"decimal","min":0,"default_value":1.5}"#).unwrap();
    assert_eq!(field.min, Some(0.0));
    assert_eq!(field.default_value.unwrap().kind, Some(kiln_proto::wkt::value::Kind::NumberValue(1.5)));
    assert!(serde_json::from_str::<Field>(r#"{"name": 5}"#).is_err());
}
