//! The container files, checked by reading them (Docker does not run in the test
//! environment): the Dockerfile's environment is a configuration the binary accepts, the
//! compose file mounts files that exist, and Prometheus scrapes the port the image serves.

use std::path::Path;
use std::process::Command;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// `KEY=value` pairs of the Dockerfile's `ENV` instruction (with `\` continuations).
fn dockerfile_env() -> Vec<(String, String)> {
    let text = read("Dockerfile").replace("\\\n", " ");
    text.lines()
        .filter_map(|l| l.strip_prefix("ENV "))
        .flat_map(|l| l.split_whitespace().map(str::to_string).collect::<Vec<_>>())
        .filter_map(|pair| {
            pair.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
        })
        .collect()
}

#[test]
fn the_images_environment_is_a_configuration_dreamos_accepts() {
    let env = dockerfile_env();
    assert!(
        env.iter().any(|(k, _)| k == "DREAMOS_DAEMON_LISTEN"),
        "{env:?}"
    );
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dreamos"));
    cmd.arg("config");
    for (k, v) in &env {
        // The image's config file is the repository's dreamos.toml.
        let v = if k == "DREAMOS_CONFIG" {
            root().join("dreamos.toml").display().to_string()
        } else {
            v.clone()
        };
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run dreamos config");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for line in [
        "data_dir = \"/data\"",
        "path = \"/data/dreamos.db\"",
        "dir = \"/logs\"",
        "listen = \"0.0.0.0\"",
        "port = 7878",
    ] {
        assert!(
            text.lines().any(|l| l.trim() == line),
            "{line} not in\n{text}"
        );
    }
    let dockerfile = read("Dockerfile");
    assert!(dockerfile.contains("VOLUME [\"/data\", \"/logs\"]"));
    assert!(dockerfile.contains("USER dreamos"));
    assert!(dockerfile.contains("GET /health"));
}

#[test]
fn compose_mounts_files_that_exist_and_prometheus_scrapes_the_daemon() {
    let compose = read("deploy/compose.yaml");
    let mut mounts = 0;
    for line in compose.lines().map(str::trim) {
        // Bind mounts: `- ./path:/target[:ro]` (commented examples are skipped).
        if let Some(rest) = line.strip_prefix("- ./") {
            let source = rest.split(':').next().unwrap_or_default();
            assert!(
                root().join("deploy").join(source).exists(),
                "compose mounts deploy/{source}, which does not exist"
            );
            mounts += 1;
        }
    }
    assert!(mounts >= 3, "{mounts} bind mounts");
    for service in ["dreamos:", "postgres:", "prometheus:", "grafana:"] {
        assert!(
            compose.contains(&format!("\n  {service}\n")),
            "no {service} service"
        );
    }
    let prometheus = read("deploy/prometheus.yml");
    assert!(
        prometheus.contains("targets: [\"dreamos:7878\"]"),
        "{prometheus}"
    );
    assert!(prometheus.contains("metrics_path: /metrics"));
}
