//! Command-line interface: `tugboat run`, `tugboat render` and `tugboat crds`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

/// tugboat deploys applications from Git and redeploys them when a webhook is called.
#[derive(Parser, Debug)]
#[command(name = "tugboat", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the operator: the GitOpsApplication controller and the probe server.
    Run(Box<RunArgs>),
    /// Render a directory (or file) of manifests, a Kustomize overlay or a Helm chart with variables and print the result, as the operator would.
    Render(RenderArgs),
    /// Print the CustomResourceDefinitions (apply them with `tugboat crds | kubectl apply -f -`).
    Crds,
}

#[derive(clap::Args, Debug)]
struct RunArgs {
    /// Address of the trigger endpoint (`POST /api/stacks/webhooks/{uuid}`, `/hooks/{uuid}`).
    #[arg(long, env = "TUGBOAT_TRIGGER_ADDR", default_value = "0.0.0.0:9292")]
    trigger_addr: SocketAddr,
    /// Trigger calls per second accepted from one client address for one Webhook, with bursts
    /// of twice that; more answer 429. Calls to unknown paths have a budget of their own of the
    /// same size, so they never use up a Webhook's. 0 disables the limit.
    #[arg(long, env = "TUGBOAT_RATE_LIMIT_PER_SOURCE", default_value_t = 50)]
    rate_limit_per_source: u32,
    /// A CIDR of proxies in front of the trigger endpoint (e.g. the Ingress controller's pods):
    /// only for calls from these addresses is the client read from `Forwarded` or
    /// `X-Forwarded-For` (the right-most address that is not such a proxy). Repeat the flag, or
    /// separate CIDRs with commas in the environment variable. Default: trust nobody.
    #[arg(long = "trusted-proxies", env = "TUGBOAT_TRUSTED_PROXIES", value_name = "CIDR", value_delimiter = ',')]
    trusted_proxies: Vec<ipnet::IpNet>,
    /// Address of the probe server (`/healthz`, `/readyz`, `/metrics`).
    #[arg(long, env = "TUGBOAT_PROBE_ADDR", default_value = "0.0.0.0:8080")]
    probe_addr: SocketAddr,
    /// Kubeconfig to use; default: in-cluster config, then `KUBECONFIG`, then `~/.kube/config`.
    #[arg(long, env = "TUGBOAT_KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
    /// Only watch applications in this namespace (default: all namespaces).
    #[arg(long, env = "TUGBOAT_NAMESPACE")]
    namespace: Option<String>,
    /// Allow `file://` repository URLs (for local development and tests).
    #[arg(long, env = "TUGBOAT_ALLOW_FILE_SOURCES")]
    allow_file_sources: bool,
    /// Directory of the Git cache (one bare repository per repository URL).
    #[arg(long, env = "TUGBOAT_CACHE_DIR", default_value = "/tmp/tugboat-cache")]
    cache_dir: PathBuf,
    /// Upper bound for the Git cache, e.g. `2Gi`, `512Mi` or bytes: after a fetch, the least
    /// recently used repositories that are not in use are deleted until the rest fit (and are
    /// fetched again when needed). 0: no bound.
    #[arg(long, env = "TUGBOAT_CACHE_MAX_BYTES", value_name = "SIZE", default_value = "2Gi", value_parser = parse_byte_size)]
    cache_max_bytes: u64,
    /// A CIDR git may connect to although the Git egress guard refuses it (loopback,
    /// link-local and cloud metadata, reserved; private ranges with --git-egress-deny-private),
    /// e.g. `127.0.0.0/8` for a Git server on the operator's host. Repeat the flag, or separate
    /// CIDRs with commas in the environment variable.
    #[arg(long = "git-egress-allow", env = "TUGBOAT_GIT_EGRESS_ALLOW", value_name = "CIDR", value_delimiter = ',')]
    git_egress_allow: Vec<ipnet::IpNet>,
    /// Refuse private addresses (10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, 100.64.0.0/10,
    /// fc00::/7) for Git too; by default they are allowed, for self-hosted Git servers.
    #[arg(long, env = "TUGBOAT_GIT_EGRESS_DENY_PRIVATE")]
    git_egress_deny_private: bool,
    /// Change window for applications that set none: `KIND;SCHEDULE;DURATION;TIME_ZONE[;GATES]`,
    /// e.g. `allow;0 22 * * 1-5;4h;Europe/Berlin`. Repeat the flag for more windows.
    #[arg(long = "default-change-window", env = "TUGBOAT_DEFAULT_CHANGE_WINDOW", value_name = "WINDOW")]
    default_change_windows: Vec<tugboat::window::CliWindow>,
    /// A CIDR that outgoing webhooks may call although the SSRF guard refuses loopback,
    /// link-local and private addresses (e.g. `10.96.0.0/12` for in-cluster services).
    /// Repeat the flag, or separate CIDRs with commas in the environment variable.
    #[arg(long = "egress-allow", env = "TUGBOAT_EGRESS_ALLOW", value_name = "CIDR", value_delimiter = ',')]
    egress_allow: Vec<ipnet::IpNet>,
    /// Applications fetched, rendered and applied at once. No reconcile waits for a
    /// BeforeDeployment gate or a rollout: those are phases of the deployment, looked at again
    /// (without a slot) when the hook or the workload changes, so any number may be waiting.
    #[arg(long, env = "TUGBOAT_CONCURRENCY", default_value_t = 8)]
    concurrency: u16,
    /// Wait this long for more changes to an application before reconciling it (e.g. `100ms`);
    /// concurrent trigger calls are already grouped by the endpoint, so the default does not wait.
    #[arg(long, env = "TUGBOAT_DEBOUNCE", default_value = "0s", value_parser = parse_duration)]
    debounce: Duration,
    /// The ServiceAccount an application without `spec.serviceAccountName` acts as, in the
    /// application's own namespace: the API server's RBAC then decides what its repository may
    /// change. The account needs a Role in that namespace (see docs/install.md).
    #[arg(long, env = "TUGBOAT_DEFAULT_SERVICE_ACCOUNT", default_value = DEFAULT_SERVICE_ACCOUNT,
          value_parser = parse_account_name)]
    default_service_account: String,
    /// Single-team installs only, UNSAFE with several tenants: applications without
    /// `spec.serviceAccountName` apply with the operator's own rights (every namespace and kind
    /// its ClusterRole reaches) instead of `--default-service-account`. Any repository an
    /// application points at can then write wherever the operator can.
    #[arg(long, env = "TUGBOAT_APPLY_AS_OPERATOR")]
    apply_as_operator: bool,
    /// Most one application's manifests may render to, in bytes (`64Mi`, `1Gi`, or a number):
    /// aliases count once per use and substituted values once per placeholder. Over it the
    /// application stalls (reason RenderBudgetExceeded, naming the file) and nothing is applied.
    #[arg(long, env = "TUGBOAT_RENDER_MAX_BYTES", default_value = "64Mi", value_parser = parse_render_bytes)]
    render_max_bytes: u64,
    /// Most Kubernetes objects one application's manifests may hold (items of a List count each).
    #[arg(long, env = "TUGBOAT_RENDER_MAX_OBJECTS", default_value_t = tugboat::render::Budget::DEFAULT.max_objects)]
    render_max_objects: usize,
    /// Let `spec.dependsOn` name applications of other namespaces. Off by default: a tenant's
    /// application then learns nothing of other namespaces' applications (not even whether they
    /// exist); turn it on when one team's applications wait for another's.
    #[arg(long, env = "TUGBOAT_ALLOW_CROSS_NAMESPACE_DEPENDENCIES")]
    allow_cross_namespace_dependencies: bool,
    #[command(flatten)]
    build: BuildFlags,
    /// Log format.
    #[arg(long, env = "TUGBOAT_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Elect a leader with a Lease: only the leader runs the controllers, every replica serves
    /// the trigger endpoint. A leader that loses the Lease exits non-zero (and restarts as a
    /// follower). `--leader-election=false` for a single replica without a Lease.
    #[arg(long, env = "TUGBOAT_LEADER_ELECTION", default_value_t = true, num_args = 0..=1,
          default_missing_value = "true", action = clap::ArgAction::Set)]
    leader_election: bool,
    /// The operator's namespace: where its Lease and the Secret `tugboat-webhook-path-key`
    /// (from which every Webhook's path is derived; created when missing) live. Default:
    /// `POD_NAMESPACE`, else `default`. Also used with `--leader-election=false`.
    #[arg(long, env = "TUGBOAT_LEADER_ELECTION_NAMESPACE")]
    leader_election_namespace: Option<String>,
    /// Name of the Lease.
    #[arg(long, env = "TUGBOAT_LEADER_ELECTION_LEASE_NAME", default_value = "tugboat")]
    leader_election_lease_name: String,
}

/// How Kustomize overlays and Helm charts are built (`run` and `render`).
#[derive(clap::Args, Debug)]
struct BuildFlags {
    /// The kustomize binary (a path, or a name looked up on PATH); the image ships a pinned one.
    #[arg(long, env = "TUGBOAT_KUSTOMIZE_BIN", default_value = "kustomize")]
    kustomize_bin: PathBuf,
    /// The helm binary (a path, or a name looked up on PATH); the image ships a pinned one.
    #[arg(long, env = "TUGBOAT_HELM_BIN", default_value = "helm")]
    helm_bin: PathBuf,
    /// Longest one `kustomize build` or `helm template` may run; then it is killed (with every
    /// process it started) and the build fails.
    #[arg(long, env = "TUGBOAT_RENDER_TIMEOUT", default_value = "60s", value_parser = parse_duration)]
    render_timeout: Duration,
    /// Memory one build tool may allocate (its data segment, e.g. `256Mi`); a chart or
    /// kustomization that needs more fails alone, the operator keeps running. 0: no limit.
    #[arg(long, env = "TUGBOAT_BUILD_MAX_MEMORY", value_name = "SIZE", default_value = "256Mi", value_parser = parse_byte_size)]
    build_max_memory: u64,
    /// Let kustomizations name remote bases (`https://…`, `github.com/org/repo//dir?ref=…`),
    /// which kustomize then clones itself. Off by default: a base is then only ever a directory
    /// of the application's own repository.
    #[arg(long, env = "TUGBOAT_ALLOW_REMOTE_BASES")]
    allow_remote_bases: bool,
}

impl BuildFlags {
    /// `max_output`: the render budget's bytes (what the tool may print).
    fn settings(
        &self,
        work_dir: PathBuf,
        max_output: u64,
        egress: tugboat::egress::EgressPolicy,
    ) -> tugboat::build::Settings {
        let tool = |name, program: &PathBuf, flag| tugboat::build::Tool {
            name,
            program: program.clone(),
            flag,
            timeout: self.render_timeout,
            max_output,
            max_memory: self.build_max_memory,
        };
        tugboat::build::Settings {
            kustomize: tool("kustomize", &self.kustomize_bin, "--kustomize-bin"),
            helm: tool("helm", &self.helm_bin, "--helm-bin"),
            allow_remote_bases: self.allow_remote_bases,
            egress,
            work_dir,
            cache_bytes: 64 << 20,
        }
    }
}

#[derive(clap::Args, Debug)]
struct RenderArgs {
    /// Directory (read recursively, sorted) or file of YAML/JSON manifests, a Kustomize
    /// overlay (a directory with kustomization.yaml) or a Helm chart (with Chart.yaml). A
    /// kustomization may reach files of the enclosing Git work tree (its repository), no further.
    path: PathBuf,
    /// Render as a Helm chart (what `spec.source.helm` does); default: when PATH holds Chart.yaml.
    #[arg(long)]
    helm: bool,
    /// Render as a Kustomize overlay (`spec.source.kustomize`); default: when PATH holds a kustomization.
    #[arg(long, conflicts_with = "helm")]
    kustomize: bool,
    /// A Helm values file (`spec.source.helm.valuesFiles`), relative to PATH; repeat for more.
    #[arg(long = "helm-values", value_name = "FILE")]
    helm_values: Vec<String>,
    /// The Helm release name (`spec.source.helm.releaseName`).
    #[arg(long, default_value = "release")]
    release_name: String,
    /// The target namespace (`.Release.Namespace` of a chart).
    #[arg(long, default_value = "default")]
    namespace: String,
    #[command(flatten)]
    build: BuildFlags,
    /// A variable, `NAME=value`; repeat for more.
    #[arg(long = "var", value_name = "NAME=VALUE", value_parser = parse_variable)]
    variables: Vec<(String, String)>,
    /// Fail on a `${VAR}` with no value and no default (the application's `strictVariables`).
    #[arg(long)]
    strict: bool,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum LogFormat {
    Text,
    Json,
}

fn parse_duration(value: &str) -> Result<Duration, String> {
    tugboat::duration::parse(value).map_err(|e| e.to_string())
}

fn parse_byte_size(value: &str) -> Result<u64, String> {
    tugboat::byte_size::parse(value).map_err(|e| e.to_string())
}

/// A render budget of 0 bytes would refuse every application: above zero only.
fn parse_render_bytes(value: &str) -> Result<u64, String> {
    Some(parse_byte_size(value)?)
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("{value:?}: the render budget must be above zero"))
}

/// `--default-service-account` unless set.
const DEFAULT_SERVICE_ACCOUNT: &str = "tugboat-deployer";

fn parse_account_name(value: &str) -> Result<String, String> {
    let valid = !value.is_empty()
        && value.len() <= 253
        && value.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && value.starts_with(|c: char| c.is_ascii_alphanumeric())
        && value.ends_with(|c: char| c.is_ascii_alphanumeric());
    if valid { Ok(value.to_owned()) } else { Err(format!("{value:?} is not a ServiceAccount name")) }
}

fn parse_variable(value: &str) -> Result<(String, String), String> {
    let (name, value) = value.split_once('=').ok_or_else(|| format!("{value:?} is not NAME=VALUE"))?;
    if !tugboat::render::is_valid_variable_name(name) {
        return Err(format!("{name:?} is not a variable name (^[_A-Za-z][_A-Za-z0-9]*$)"));
    }
    Ok((name.to_owned(), value.to_owned()))
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Crds => match tugboat::crds::to_yaml_stream() {
            Ok(yaml) => {
                print!("{yaml}");
                ExitCode::SUCCESS
            }
            Err(error) => fail(format!("cannot render the CRDs: {error}")),
        },
        Command::Render(args) => render(args),
        Command::Run(args) => run(*args),
    }
}

fn fail(message: String) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::FAILURE
}

fn render(args: RenderArgs) -> ExitCode {
    let variables: BTreeMap<String, String> = args.variables.iter().cloned().collect();
    let files = match build_method(&args) {
        None => tugboat::render::read_manifests(&args.path).map_err(|e| e.to_string()),
        Some(method) => build_locally(&args, &method, &variables),
    };
    let files = match files {
        Ok(files) => files,
        Err(error) => return fail(error),
    };
    match tugboat::render::render(&files, &variables, args.strict) {
        Ok(rendered) => {
            print!("{}", tugboat::render::to_yaml_stream(&rendered.objects));
            ExitCode::SUCCESS
        }
        Err(error) => fail(error.to_string()),
    }
}

/// `--helm`, `--kustomize`, else what the directory holds (as the operator decides).
fn build_method(args: &RenderArgs) -> Option<tugboat::build::Method> {
    let helm = tugboat::api::HelmBuild {
        release_name: Some(args.release_name.clone()),
        values: None,
        values_files: args.helm_values.clone(),
        include_crds: true,
    };
    let names: Vec<String> = std::fs::read_dir(&args.path)
        .map(|dir| dir.filter_map(|e| e.ok()?.file_name().into_string().ok()).collect())
        .unwrap_or_default();
    let spec = tugboat::api::GitSource {
        repo_url: String::new(),
        reference: Default::default(),
        path: None,
        secret_ref: None,
        kustomize: args.kustomize.then(Default::default),
        helm: (args.helm || !args.helm_values.is_empty()).then(|| helm.clone()),
    };
    match tugboat::build::Method::of(&spec, names.iter().map(String::as_str))? {
        tugboat::build::Method::Helm(_) => Some(tugboat::build::Method::Helm(helm)),
        method => Some(method),
    }
}

/// Builds PATH as the operator builds it from a commit, on the files of its Git work tree.
fn build_locally(
    args: &RenderArgs,
    method: &tugboat::build::Method,
    variables: &BTreeMap<String, String>,
) -> Result<Vec<tugboat::render::ManifestFile>, String> {
    let limit = tugboat::render::Budget::DEFAULT.max_bytes;
    let (files, path) = tugboat::build::local::read(&args.path, limit).map_err(|e| e.to_string())?;
    // A local render is the user's own machine: the Git egress guard's default policy.
    let egress = tugboat::egress::EgressPolicy::for_git(Vec::new(), false);
    let settings = args.build.settings(std::env::temp_dir().join("tugboat-builds"), limit, egress);
    let builder = tugboat::build::Builder::new(settings, std::sync::Arc::default());
    let capabilities = tugboat::build::Capabilities::default();
    let request = tugboat::build::Request {
        url: "local",
        sha: "",
        path: &path,
        method,
        release: &args.release_name,
        namespace: &args.namespace,
        variables,
        strict: args.strict,
        capabilities: &capabilities,
    };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
    let built = runtime.block_on(builder.build(&request, &files)).map_err(|e| e.to_string())?;
    Ok(built.files.clone())
}

fn run(args: RunArgs) -> ExitCode {
    let RunArgs {
        trigger_addr,
        rate_limit_per_source,
        trusted_proxies,
        probe_addr,
        kubeconfig,
        namespace,
        allow_file_sources,
        cache_dir,
        cache_max_bytes,
        git_egress_allow,
        git_egress_deny_private,
        default_change_windows,
        egress_allow,
        concurrency,
        debounce,
        default_service_account,
        apply_as_operator,
        render_max_bytes,
        render_max_objects,
        allow_cross_namespace_dependencies,
        build,
        log_format,
        leader_election,
        leader_election_namespace,
        leader_election_lease_name,
    } = args;
    init_logging(log_format);
    if apply_as_operator {
        tracing::warn!(
            "--apply-as-operator: applications without spec.serviceAccountName apply with the operator's own rights; never share this operator between tenants"
        );
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => return fail(format!("cannot start the async runtime: {error}")),
    };
    let git_egress = tugboat::egress::EgressPolicy::for_git(git_egress_allow, git_egress_deny_private);
    let build = build.settings(std::env::temp_dir().join("tugboat-builds"), render_max_bytes, git_egress.clone());
    let settings = tugboat::controller::Settings {
        allow_file_sources,
        concurrency: concurrency.max(1),
        debounce,
        namespace,
        default_windows: default_change_windows.into_iter().map(|w| w.0).collect(),
        default_service_account: (!apply_as_operator).then_some(default_service_account),
        render_budget: tugboat::render::Budget { max_bytes: render_max_bytes, max_objects: render_max_objects.max(1) },
        build,
        allow_cross_namespace_dependencies,
    };
    let operator_namespace = leader_election_namespace
        .or_else(|| std::env::var("POD_NAMESPACE").ok().filter(|ns| !ns.is_empty()))
        .unwrap_or_else(|| "default".to_owned());
    let election = leader_election.then(|| {
        tugboat::leader::ElectionConfig::new(
            operator_namespace.clone(),
            leader_election_lease_name,
            tugboat::leader::default_identity(),
        )
    });
    let options = tugboat::operator::Options {
        trigger_addr,
        rate_limit_per_source,
        trusted_proxies,
        probe_addr,
        kubeconfig,
        cache_dir,
        cache_max_bytes,
        git_egress,
        egress_allow,
        settings,
        election,
        operator_namespace,
    };
    let result = runtime.block_on(tugboat::operator::run(options));
    // After a lost lease, in-flight work is abandoned on purpose: do not wait for it.
    runtime.shutdown_timeout(Duration::from_secs(1));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => fail(error.to_string()),
    }
}

fn init_logging(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,kube=warn,tower=warn,hyper=warn"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_target(false).with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().flatten_event(true).init(),
        LogFormat::Text => builder.init(),
    }
}

#[cfg(test)]
mod tests {
    use super::parse_render_bytes;

    #[test]
    fn a_render_budget_is_a_size_above_zero() {
        assert_eq!(parse_render_bytes("64Mi"), Ok(64 << 20));
        assert_eq!(parse_render_bytes("4096"), Ok(4096));
        for bad in ["", "0", "Mi", "-1"] {
            assert!(parse_render_bytes(bad).is_err(), "{bad:?}");
        }
    }
}
