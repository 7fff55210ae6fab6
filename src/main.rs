//! Command line: `run` the operator, print the `crds`, and (feature `sim`) the simulators,
//! the `sandbox` and the `bench`mark. Contract: ../shared/design.md §3.

use std::{net::SocketAddr, path::PathBuf, process::ExitCode};

use azure_gallery_operator::telemetry::LogFormat;
use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "azure-gallery-operator",
    version,
    about = "Azure Compute Gallery images, versions and VMs as Kubernetes custom resources"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the operator: watch Gallery, ImageDefinition, ImageVersion and VirtualMachine objects
    /// and drive Azure to match them.
    #[command(after_help = RUN_ENVIRONMENT)]
    Run(RunArgs),
    /// Print every CRD as multi-document YAML (the content of crds/).
    Crds,
    /// Start the ARM simulator, the Kubernetes API emulator and the operator in one process.
    Sandbox(SandboxArgs),
    /// Local simulators of Azure Resource Manager and of the Kubernetes API.
    #[command(subcommand)]
    Sim(SimCommand),
    /// Run the sandbox at scale and print throughput, request and memory figures.
    Bench(BenchArgs),
}

/// `run --help`: the environment `run` reads besides its options.
const RUN_ENVIRONMENT: &str = "\
Azure identity, the first that applies:
  workload identity   AZURE_FEDERATED_TOKEN_FILE with AZURE_CLIENT_ID and AZURE_TENANT_ID
                      (as AKS's workload identity webhook injects them)
  client secret       AZURE_CLIENT_SECRET with AZURE_CLIENT_ID and AZURE_TENANT_ID
  managed identity    AZURE_USE_MANAGED_IDENTITY=true (and AZURE_CLIENT_ID for a user-assigned one)
  Azure CLI           the account of `az login`
An object may name a Secret in spec.credentialRef with AZURE_TENANT_ID, AZURE_CLIENT_ID and
AZURE_CLIENT_SECRET to act as another identity.

Environment:
  AZURE_SUBSCRIPTION_ID  the subscription of objects that name none
  RUST_LOG               log filter (default: info), e.g. RUST_LOG=azure_gallery_operator=debug
  POD_NAMESPACE          the namespace of the leader Lease with --leader-elect (default: default)";

#[derive(Args)]
struct RunArgs {
    /// Kubeconfig to use; default: in-cluster config, then $KUBECONFIG, then ~/.kube/config.
    #[arg(long, env = "KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
    /// Azure Resource Manager endpoint (sovereign clouds, Azure Stack Hub, the ARM simulator).
    #[arg(
        long,
        env = "ARM_ENDPOINT",
        default_value = "https://management.azure.com"
    )]
    arm_endpoint: String,
    /// Entra ID authority host for tokens.
    #[arg(
        long,
        env = "AZURE_AUTHORITY_HOST",
        default_value = "https://login.microsoftonline.com"
    )]
    authority_host: String,
    /// Extra CA certificates (PEM) to trust for ARM and the authority host.
    #[arg(long, env = "CA_FILE")]
    ca_bundle: Option<PathBuf>,
    /// Watch only these namespaces (repeatable); default: all namespaces.
    #[arg(long = "namespace")]
    namespaces: Vec<String>,
    /// Address of /metrics, /healthz and /readyz.
    #[arg(long, default_value = "0.0.0.0:8080")]
    metrics_addr: SocketAddr,
    /// Objects reconciled at once, per kind.
    #[arg(long, default_value_t = 8)]
    concurrency: u16,
    /// Seconds between drift checks of an object in sync (jittered).
    #[arg(long, default_value_t = 600)]
    resync: u64,
    /// Take a Lease before writing, so only one replica acts at a time.
    #[arg(long)]
    leader_elect: bool,
    /// Token scope for ARM (sovereign clouds and Azure Stack Hub use their own).
    #[arg(long, env = "ARM_SCOPE", default_value = azure_gallery_operator::arm::client::DEFAULT_SCOPE)]
    arm_scope: String,
    /// Log format: plain for a terminal, json for a cluster's log pipeline.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value = "plain")]
    log_format: LogFormat,
    /// Whose identity objects without credentials of their own act as: shared (the
    /// operator's), or namespaced (only the object's credentialRef or its namespace's Secret
    /// azure-gallery-credentials; without them: CredentialsRequired).
    #[arg(long, env = "TENANCY", value_enum, default_value = "shared")]
    tenancy: azure_gallery_operator::reconcile::tenancy::Mode,
    /// YAML naming the subscriptions, resource groups and subnets each namespace's objects may
    /// use (README "Sharing one operator between teams"); default: no limit.
    #[arg(long, env = "SCOPES_FILE", value_name = "FILE")]
    scopes: Option<PathBuf>,
    /// Own only the custom resources this Kubernetes label selector picks (e.g.
    /// `shard=a`, `gallery in (g0,g2)`), with a leader Lease of its own; a shard must hold
    /// whole trees (README "Shards").
    #[arg(long, env = "SHARD_SELECTOR", value_name = "SELECTOR")]
    shard_selector: Option<String>,
}

#[derive(Args)]
struct SandboxArgs {
    /// Apply examples/quickstart.yaml, show progress until Ready, delete it all, exit.
    #[arg(long)]
    demo: bool,
    /// With --demo: keep running after the demo instead of exiting, and keep the temporary
    /// directory.
    #[arg(long, requires = "demo")]
    keep: bool,
    /// Speed-up of simulated Azure operation and replication times.
    #[arg(long, default_value_t = 4.0)]
    speed: f64,
    /// Directory for the kubeconfig, sandbox.env (the variables examples/ uses), the
    /// simulator's CA and the operator log (default: a new temporary directory, removed on exit
    /// unless --keep).
    #[arg(long)]
    dir: Option<PathBuf>,
}

#[derive(Subcommand)]
enum SimCommand {
    /// Serve ARM and the Entra ID token endpoint over HTTPS.
    #[command(after_help = "\
When ready, prints KEY=VALUE lines, then READY, and serves until killed:
  ARM_ENDPOINT, AUTHORITY_HOST, CA_FILE      where to reach it, and the CA to trust
  AZURE_TENANT_ID, AZURE_SUBSCRIPTION_ID     tenant 1 and its subscription
  AZURE_CLIENT_ID, AZURE_CLIENT_SECRET       the multi-tenant app (registered in both tenants)
  AZURE_TENANT_ID_2, AZURE_SUBSCRIPTION_ID_2 tenant 2 and its subscription
  AZURE_SINGLE_TENANT_CLIENT_ID, AZURE_SINGLE_TENANT_CLIENT_SECRET   an app of tenant 1 only
  SOURCE_LINUX_IMAGE_ID, SOURCE_WINDOWS_IMAGE_ID, SOURCE_SPECIALIZED_SNAPSHOT_ID, SOURCE_VM_ID,
  SUBNET_ID (and SOURCE_LINUX_IMAGE_ID_2, SUBNET_ID_2 in tenant 2)   the seeded sources
  SOURCE_TRUSTED_LAUNCH_VM_ID, SOURCE_TRUSTED_LAUNCH_DISK_ID   Trusted Launch sources (tenant 1)
  NON_ZONAL_REGION                           a region without availability zones (westus)")]
    Arm(SimArmArgs),
    /// Serve the Kubernetes API emulator with this operator's CRDs installed.
    #[command(
        after_help = "When ready, prints KUBECONFIG=<the --kubeconfig-out file>, then READY, and serves until\nkilled."
    )]
    Kube(SimKubeArgs),
}

#[derive(Args)]
struct SimArmArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Keep state here so it survives a restart.
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// Write the generated CA certificate (PEM) here.
    #[arg(long)]
    ca_out: Option<PathBuf>,
    /// Speed-up of simulated operation and replication durations (10 = ten times faster).
    #[arg(long, default_value_t = 1.0)]
    speed: f64,
    /// YAML declaring tenants, subscriptions, app registrations and regions.
    #[arg(long)]
    world: Option<PathBuf>,
}

#[derive(Args)]
struct SimKubeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Write a kubeconfig for the emulator here.
    #[arg(long)]
    kubeconfig_out: PathBuf,
}

#[derive(Args)]
#[command(group(clap::ArgGroup::new("mode").required(true).args(["objects", "plot"])))]
struct BenchArgs {
    /// Number of image versions to create (required, unless --plot).
    #[arg(long, value_name = "N")]
    objects: Option<usize>,
    /// Instead of measuring, draw time-to-Ready and peak RSS against N from the JSON files in
    /// this directory (earlier `--json` outputs) into DIR/scaling.png.
    #[arg(long, value_name = "DIR")]
    plot: Option<PathBuf>,
    /// TrueType font for `--plot` labels; default: the first of a few common system paths.
    #[arg(long, requires = "plot")]
    font: Option<PathBuf>,
    /// Also write the figures to this file as one JSON object.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Target this API server instead of the embedded emulator.
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// Speed-up of simulated Azure operation and replication times.
    #[arg(long, default_value_t = 20.0)]
    speed: f64,
    /// The operator's resync interval in seconds; steady state is measured over two. Default: one
    /// GET per object per resync uses half the client's read budget (at least 15 s).
    #[arg(long)]
    resync: Option<u64>,
    /// The operator's concurrency per kind.
    #[arg(long, default_value_t = 16)]
    concurrency: u16,
    /// Spread the galleries over this many subscriptions (one tenant); each has its own ARM
    /// request budget, as in Azure.
    #[arg(long, default_value_t = 1)]
    subscriptions: usize,
    /// The operator executable to run and measure, e.g. the production build
    /// (`cargo build --release --no-default-features`); default: this binary.
    #[arg(long, value_name = "PATH")]
    operator: Option<PathBuf>,
    /// Run this many operator processes, each with `--shard-selector` for the galleries (whole
    /// trees) labelled with its shard and an identity of its own; combine with --subscriptions.
    #[arg(long, default_value_t = 1)]
    shards: usize,
    /// Make the simulator's global bucket per subscription this many times one principal's
    /// (ARM's is 15), so a few --shards reach the subscription's global limit.
    #[arg(long, value_name = "F")]
    global_factor: Option<f64>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Crds => {
            print!("{}", azure_gallery_operator::api::crds_yaml());
            ExitCode::SUCCESS
        }
        Command::Run(args) => {
            azure_gallery_operator::telemetry::init_logging(args.log_format);
            limit_malloc_arenas();
            let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
            match runtime.block_on(run(args)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!("{e:#}");
                    eprintln!("azure-gallery-operator run: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Sandbox(args) => sandbox(args),
        Command::Sim(command) => sim(command),
        Command::Bench(args) => bench(args),
    }
}

/// Caps glibc's malloc at two arenas before the runtime starts its threads. By default each
/// thread that allocates under contention gets an arena of its own (up to eight per core), and
/// memory freed into one is reused only by the threads on it: with watch, reconcile and HTTP
/// tasks moving between worker threads, that slack was a large part of peak RSS at 10,000
/// objects (docs/performance.md, "Memory"). `MALLOC_ARENA_MAX` in the environment still wins.
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only sets a malloc parameter; no other thread exists yet.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 2);
        }
    }
}

/// The operator until SIGTERM.
async fn run(args: RunArgs) -> anyhow::Result<()> {
    use azure_gallery_operator::{
        arm::auth::IdentitySource,
        controllers,
        reconcile::tenancy::{Scopes, Tenancy},
    };
    let startup = controllers::Startup {
        kubeconfig: args.kubeconfig,
        arm_endpoint: args.arm_endpoint,
        authority_host: args.authority_host,
        ca_bundle: args.ca_bundle,
        arm_scope: args.arm_scope,
        identity: IdentitySource::from_env(),
        default_subscription: std::env::var("AZURE_SUBSCRIPTION_ID")
            .ok()
            .filter(|s| !s.is_empty()),
        namespaces: args.namespaces,
        metrics_addr: Some(args.metrics_addr),
        concurrency: args.concurrency,
        resync: std::time::Duration::from_secs(args.resync),
        leader_elect: args.leader_elect,
        shard_selector: args.shard_selector.filter(|s| !s.trim().is_empty()),
        tenancy: Tenancy {
            mode: args.tenancy,
            scopes: args
                .scopes
                .as_deref()
                .map(Scopes::load)
                .transpose()?
                .map(std::sync::Arc::new),
        },
    };
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    tokio::spawn(trim_malloc());
    controllers::operate(startup, controllers::shutdown_signal()).await
}

/// Hands free heap pages back to the kernel every few seconds. glibc returns memory only from
/// the top of a heap, so the decode buffers of a large list or a burst of answers, freed amid
/// the objects still cached, would otherwise stay resident for good; `malloc_trim` releases the
/// free pages wherever they are (docs/performance.md, "Memory").
#[cfg(all(target_os = "linux", target_env = "gnu"))]
async fn trim_malloc() {
    let mut every = tokio::time::interval(std::time::Duration::from_secs(5));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        // SAFETY: malloc_trim only returns free memory to the kernel; it is thread-safe.
        unsafe {
            libc::malloc_trim(0);
        }
    }
}

/// `sim arm` / `sim kube`: start, announce `KEY=VALUE` lines and `READY`, serve until killed.
#[cfg(feature = "sim")]
fn sim(command: SimCommand) -> ExitCode {
    use azure_gallery_operator::sim;
    azure_gallery_operator::telemetry::init_logging(LogFormat::Plain);
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let result = runtime.block_on(async {
        let facts = match command {
            SimCommand::Arm(a) => {
                let running = sim::arm::start(sim::arm::Options {
                    listen: a.listen,
                    state_dir: a.state_dir,
                    ca_out: a.ca_out,
                    speed: a.speed,
                    world: a.world,
                })
                .await?;
                let facts = running.facts.clone();
                std::mem::forget(running);
                facts
            }
            SimCommand::Kube(k) => {
                let running = sim::kube::start(sim::kube::Options {
                    listen: k.listen,
                    kubeconfig_out: k.kubeconfig_out,
                })
                .await?;
                let facts = running.facts.clone();
                std::mem::forget(running);
                facts
            }
        };
        sim::announce(&facts);
        azure_gallery_operator::controllers::shutdown_signal().await;
        anyhow::Ok(())
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("azure-gallery-operator sim: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(feature = "sim")]
fn sandbox(args: SandboxArgs) -> ExitCode {
    use azure_gallery_operator::sandbox;
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    match runtime.block_on(sandbox::run(sandbox::Options {
        demo: args.demo,
        keep: args.keep,
        speed: args.speed,
        dir: args.dir,
    })) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("azure-gallery-operator sandbox: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(feature = "sim")]
fn bench(args: BenchArgs) -> ExitCode {
    use azure_gallery_operator::bench;
    azure_gallery_operator::telemetry::init_logging(LogFormat::Plain);
    let result = match (args.plot, args.objects) {
        (Some(dir), _) => bench::plot(&dir, args.font.as_deref()),
        (None, Some(objects)) => {
            let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
            runtime.block_on(bench::run(bench::Options {
                objects,
                json: args.json,
                kubeconfig: args.kubeconfig,
                speed: args.speed,
                resync: args.resync.map(std::time::Duration::from_secs),
                concurrency: args.concurrency,
                subscriptions: args.subscriptions,
                operator: args.operator,
                shards: args.shards,
                global_factor: args.global_factor,
            }))
        }
        (None, None) => unreachable!("clap requires --objects or --plot"),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("azure-gallery-operator bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(not(feature = "sim"))]
fn bench(_: BenchArgs) -> ExitCode {
    eprintln!(
        "azure-gallery-operator bench: this build has no simulators (built without feature `sim`)"
    );
    ExitCode::from(2)
}

#[cfg(not(feature = "sim"))]
fn sandbox(_: SandboxArgs) -> ExitCode {
    eprintln!(
        "azure-gallery-operator sandbox: this build has no simulators (built without feature `sim`)"
    );
    ExitCode::from(2)
}

#[cfg(not(feature = "sim"))]
fn sim(_: SimCommand) -> ExitCode {
    eprintln!(
        "azure-gallery-operator sim: this build has no simulators (built without feature `sim`)"
    );
    ExitCode::from(2)
}
