use crate::helpers::spawn_app;
use reqwest::{Method, StatusCode};

/// Every operation in the served OpenAPI document exists in the router: calling it
/// anonymously never reaches the "no such route" fallback.
#[tokio::test]
async fn every_documented_operation_is_routed() {
    let app = spawn_app().await;
    let reply = app
        .request(Method::GET, "/api/openapi.json", None, None)
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.body["openapi"].as_str().unwrap().starts_with("3."));
    let paths = reply.body["paths"].as_object().unwrap();
    assert!(paths.len() >= 14, "{} paths documented", paths.len());
    let id = "00000000-0000-4000-8000-000000000000";
    let mut operations = 0;
    for (path, item) in paths {
        let concrete = path.replace("{id}", id).replace("{user_id}", "someone");
        for method in ["get", "post", "patch", "delete"] {
            if item.get(method).is_none() {
                continue;
            }
            operations += 1;
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let reply = app
                .request(method.clone(), &concrete, None, Some(serde_json::json!({})))
                .await;
            assert_ne!(
                reply.body["error"]["message"], "no such route",
                "{method} {path} is documented but not routed"
            );
        }
    }
    assert!(operations >= 19, "{operations} operations documented");
}
