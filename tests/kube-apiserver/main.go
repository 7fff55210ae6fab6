// kube-test-server runs a real Kubernetes control plane for the test suite, in one process:
// embedded etcd, kube-apiserver and kube-controller-manager, all on loopback, all state in
// a temporary directory. It is started by `tests/kube-apiserver/up DIR` and speaks the same
// protocol as `azure-gallery-operator sim kube`: once the API server is ready it writes an
// admin kubeconfig to DIR/kubeconfig and prints `KUBECONFIG=<path>` then `READY` on stdout.
// It serves until SIGTERM/SIGINT or until its parent process goes away, then stops every
// component and removes its state. Logs go to stderr: by default only errors while serving
// (start-up and shutdown report benign errors of a first boot and of stopping), everything
// when KUBE_TEST_SERVER_V is set to a klog verbosity (0 for the usual info lines, 2 for more).
// KUBE_TEST_SERVER_APISERVER_ARGS adds kube-apiserver flags (whitespace-separated) after the
// defaults, so a test can run a differently configured server, e.g. one that compacts etcd
// every second: "--watch-cache=false --etcd-compaction-interval=1s".
//
// The wiring follows Kubernetes' own test harnesses (cmd/kube-apiserver/app/testing and
// cmd/kube-controller-manager/app/testing): the components are configured through their
// options APIs with real command-line flags, so the behaviour is the one a cluster has.
package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/pflag"
	"go.etcd.io/etcd/server/v3/embed"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilerrors "k8s.io/apimachinery/pkg/util/errors"
	utilcompatibility "k8s.io/apiserver/pkg/util/compatibility"
	utilfeature "k8s.io/apiserver/pkg/util/feature"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	basecompatibility "k8s.io/component-base/compatibility"
	logsapi "k8s.io/component-base/logs/api/v1"
	"k8s.io/klog/v2"
	apiserverapp "k8s.io/kubernetes/cmd/kube-apiserver/app"
	apiserveroptions "k8s.io/kubernetes/cmd/kube-apiserver/app/options"
	kcmapp "k8s.io/kubernetes/cmd/kube-controller-manager/app"
	kcmoptions "k8s.io/kubernetes/cmd/kube-controller-manager/app/options"
)

// controllers run by kube-controller-manager: what makes ownerReference cascades, namespace
// deletion, ServiceAccounts and their tokens, and the aggregated RBAC roles behave as on a
// real cluster. Workload controllers are left out: there is no scheduler and no kubelet.
var controllers = []string{
	"garbage-collector-controller",
	"namespace-controller",
	"serviceaccount-controller",
	"serviceaccount-token-controller",
	"root-ca-certificate-publisher-controller",
	"clusterrole-aggregation-controller",
}

func init() {
	// Two components in one process both apply logging options; tolerate the second.
	logsapi.ReapplyHandling = logsapi.ReapplyHandlingIgnoreUnchanged
}

func main() {
	if len(os.Args) != 2 || strings.HasPrefix(os.Args[1], "-") {
		fmt.Fprintln(os.Stderr, "usage: kube-test-server DIR  (writes DIR/kubeconfig, prints KUBECONFIG=... and READY)")
		os.Exit(2)
	}
	if err := run(os.Args[1], setupLogging()); err != nil {
		fmt.Fprintf(os.Stderr, "kube-test-server: %v\n", err)
		os.Exit(1)
	}
}

// setupLogging configures klog and returns how to show (true) or hide (false) its errors;
// with KUBE_TEST_SERVER_V set everything is shown and that function does nothing.
func setupLogging() (showErrors func(bool)) {
	fs := flag.NewFlagSet("klog", flag.ContinueOnError)
	klog.InitFlags(fs)
	args := []string{"-logtostderr=true", "-legacy_stderr_threshold_behavior=false", "-stderrthreshold=FATAL", "-v=0"}
	v := os.Getenv("KUBE_TEST_SERVER_V")
	if v != "" {
		args = []string{"-logtostderr=true", "-v=" + v}
	}
	if err := fs.Parse(args); err != nil {
		fmt.Fprintf(os.Stderr, "kube-test-server: bad KUBE_TEST_SERVER_V: %v\n", err)
		os.Exit(2)
	}
	return func(show bool) {
		if v != "" {
			return
		}
		threshold := "FATAL"
		if show {
			threshold = "ERROR"
		}
		_ = fs.Set("stderrthreshold", threshold) // atomic in klog: safe while logging
	}
}

func run(dir string, showErrors func(bool)) error {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", dir, err)
	}
	state, err := os.MkdirTemp("", "kube-test-server-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(state)
	kubeconfigPath := filepath.Join(dir, "kubeconfig")
	defer os.Remove(kubeconfigPath)

	ctx, stop := shutdownContext()
	defer stop()

	pki, err := writePKI(state)
	if err != nil {
		return fmt.Errorf("generating certificates: %w", err)
	}

	etcd, etcdURL, err := startEtcd(filepath.Join(state, "etcd"))
	if err != nil {
		return fmt.Errorf("starting etcd: %w", err)
	}
	defer etcd.Close()

	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("listening for kube-apiserver: %w", err)
	}
	server := "https://" + listener.Addr().String()

	if err := writeKubeconfig(kubeconfigPath, server, pki.ca, pki.admin); err != nil {
		return err
	}
	kcmKubeconfig := filepath.Join(state, "kube-controller-manager.kubeconfig")
	if err := writeKubeconfig(kcmKubeconfig, server, pki.ca, pki.controllerManager); err != nil {
		return err
	}

	apiCtx, stopAPI := context.WithCancel(context.Background())
	api, err := startAPIServer(apiCtx, listener, etcdURL, pki)
	if err != nil {
		stopAPI()
		return fmt.Errorf("kube-apiserver: %w", err)
	}
	defer func() {
		stopAPI()
		api.await(20 * time.Second)
	}()

	restConfig, err := clientcmd.BuildConfigFromFlags("", kubeconfigPath)
	if err != nil {
		return err
	}
	if err := waitReady(ctx, restConfig, api); err != nil {
		return err
	}

	kcmCtx, stopKCM := context.WithCancel(context.Background())
	kcm, err := startControllerManager(kcmCtx, kcmKubeconfig, pki)
	if err != nil {
		stopKCM()
		return fmt.Errorf("kube-controller-manager: %w", err)
	}
	defer func() {
		stopKCM()
		kcm.await(10 * time.Second)
	}()

	if err := waitControllers(ctx, restConfig, kcm); err != nil {
		return err
	}

	fmt.Printf("KUBECONFIG=%s\nREADY\n", kubeconfigPath)
	showErrors(true)
	defer showErrors(false) // runs first: stopping components log errors by design

	select {
	case <-ctx.Done():
		return nil
	case <-api.done:
		return api.stopped()
	case <-kcm.done:
		return kcm.stopped()
	}
}

// shutdownContext is cancelled on SIGTERM/SIGINT, and when the parent process exits (we are
// then re-parented, so our parent pid changes): a killed test run never leaves a server
// behind, even when its parent could not arrange PR_SET_PDEATHSIG.
func shutdownContext() (context.Context, context.CancelFunc) {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	parent := os.Getppid()
	go func() {
		tick := time.NewTicker(500 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				if os.Getppid() != parent {
					stop()
					return
				}
			}
		}
	}()
	return ctx, stop
}

// component is a server running on its own goroutine; done is closed when it returns.
type component struct {
	name string
	done chan struct{}
	err  error
}

func runComponent(name string, run func() error) *component {
	c := &component{name: name, done: make(chan struct{})}
	go func() {
		defer close(c.done)
		c.err = run()
	}()
	return c
}

func (c *component) stopped() error {
	return fmt.Errorf("%s stopped: %v", c.name, c.err)
}

func (c *component) await(timeout time.Duration) {
	select {
	case <-c.done:
		if c.err != nil && !errors.Is(c.err, context.Canceled) {
			klog.Errorf("%s stopped with: %v", c.name, c.err)
		}
	case <-time.After(timeout):
		klog.Errorf("%s did not stop within %s", c.name, timeout)
	}
}

// ---- etcd ----

func startEtcd(dataDir string) (*embed.Etcd, string, error) {
	var lastErr error
	// Free ports are picked then bound by etcd; retry on the rare race with another process.
	for attempt := 0; attempt < 5; attempt++ {
		ports, err := freePorts(2)
		if err != nil {
			return nil, "", err
		}
		cfg := embed.NewConfig()
		cfg.Name = "kube-test-server"
		cfg.Dir = dataDir
		cfg.UnsafeNoFsync = true // throwaway data: durability only costs time
		cfg.Logger = "zap"
		cfg.LogLevel = etcdLogLevel()
		cfg.LogOutputs = []string{"stderr"}
		clientURL := url.URL{Scheme: "http", Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[0]))}
		peerURL := url.URL{Scheme: "http", Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[1]))}
		cfg.ListenClientUrls = []url.URL{clientURL}
		cfg.AdvertiseClientUrls = []url.URL{clientURL}
		cfg.ListenPeerUrls = []url.URL{peerURL}
		cfg.AdvertisePeerUrls = []url.URL{peerURL}
		cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
		e, err := embed.StartEtcd(cfg)
		if err != nil {
			lastErr = err
			os.RemoveAll(dataDir)
			continue
		}
		select {
		case <-e.Server.ReadyNotify():
			return e, clientURL.String(), nil
		case <-time.After(60 * time.Second):
			e.Close()
			return nil, "", errors.New("etcd not ready within 60s")
		}
	}
	return nil, "", lastErr
}

// etcdLogLevel: etcd reports its own shutdown at error level, so quiet mode shows only fatal.
func etcdLogLevel() string {
	if os.Getenv("KUBE_TEST_SERVER_V") != "" {
		return "info"
	}
	return "fatal"
}

func freePorts(n int) ([]int, error) {
	var ports []int
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// ---- kube-apiserver ----

// apiserverArgsEnv names the environment variable of extra kube-apiserver flags.
const apiserverArgsEnv = "KUBE_TEST_SERVER_APISERVER_ARGS"

func startAPIServer(ctx context.Context, listener net.Listener, etcdURL string, pki *pki) (*component, error) {
	s := apiserveroptions.NewServerRunOptions()
	fs := pflag.NewFlagSet("kube-apiserver", pflag.ContinueOnError)
	for _, f := range s.Flags().FlagSets {
		fs.AddFlagSet(f)
	}
	args := []string{
		"--etcd-servers=" + etcdURL,
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		"--tls-cert-file=" + pki.serving.certFile,
		"--tls-private-key-file=" + pki.serving.keyFile,
		"--client-ca-file=" + pki.ca.certFile,
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file=" + pki.serviceAccountPublicKey,
		"--service-account-signing-key-file=" + pki.serviceAccountKey,
		"--authorization-mode=Node,RBAC",
		"--service-cluster-ip-range=10.0.0.0/24",
		// The only address is loopback: no endpoints for the "kubernetes" Service (as the
		// upstream test server does).
		"--endpoint-reconciler-type=none",
		"--profiling=false",
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	// Parsed on their own, after the defaults (the last value of a flag wins), so an error
	// names where the bad flag came from.
	if extra := strings.Fields(os.Getenv(apiserverArgsEnv)); len(extra) != 0 {
		if err := fs.Parse(extra); err != nil {
			return nil, fmt.Errorf("%s: %w", apiserverArgsEnv, err)
		}
		if fs.NArg() != 0 {
			return nil, fmt.Errorf("%s: not a flag: %q", apiserverArgsEnv, fs.Arg(0))
		}
	}
	s.SecureServing.Listener = listener
	s.SecureServing.BindPort = listener.Addr().(*net.TCPAddr).Port
	if err := s.GenericServerRunOptions.ComponentGlobalsRegistry.Set(); err != nil {
		return nil, err
	}
	rest.SetDefaultWarningHandler(rest.NoWarnings{})
	completed, err := s.Complete(ctx)
	if err != nil {
		return nil, err
	}
	if errs := completed.Validate(); len(errs) != 0 {
		return nil, utilerrors.NewAggregate(errs)
	}
	return runComponent("kube-apiserver", func() error { return apiserverapp.Run(ctx, completed) }), nil
}

func waitReady(ctx context.Context, config *rest.Config, api *component) error {
	client, err := kubernetes.NewForConfig(config)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(5 * time.Minute)
	var last string
	for {
		var status int
		body, err := client.CoreV1().RESTClient().Get().AbsPath("/readyz").Do(ctx).StatusCode(&status).Raw()
		if err == nil && status == 200 {
			return nil
		}
		last = fmt.Sprintf("status %d: %v %s", status, err, body)
		select {
		case <-ctx.Done():
			return errors.New("interrupted while waiting for /readyz")
		case <-api.done:
			return api.stopped()
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("kube-apiserver /readyz not ok within 5m (last: %s)", last)
		}
	}
}

// ---- kube-controller-manager ----

func startControllerManager(ctx context.Context, kubeconfig string, pki *pki) (*component, error) {
	s, err := kcmoptions.NewKubeControllerManagerOptions()
	if err != nil {
		return nil, err
	}
	// A registry of its own, as the upstream test server does: the API server's registry
	// has already been set from its own flags.
	featureGate := utilfeature.DefaultMutableFeatureGate.DeepCopy()
	effectiveVersion := utilcompatibility.DefaultBuildEffectiveVersion()
	effectiveVersion.SetEmulationVersion(featureGate.EmulationVersion())
	effectiveVersion.SetMinCompatibilityVersion(featureGate.MinCompatibilityVersion())
	registry := basecompatibility.NewComponentGlobalsRegistry()
	if err := registry.Register(basecompatibility.DefaultKubeComponent, effectiveVersion, featureGate); err != nil {
		return nil, err
	}
	s.ComponentGlobalsRegistry = registry

	all, disabled, aliases := kcmapp.KnownControllers(), kcmapp.ControllersDisabledByDefault(), kcmapp.ControllerAliases()
	named := s.Flags(all, disabled, aliases)
	fs := pflag.NewFlagSet("kube-controller-manager", pflag.ContinueOnError)
	for _, f := range named.FlagSets {
		fs.AddFlagSet(f)
	}
	args := []string{
		"--kubeconfig=" + kubeconfig,
		"--secure-port=0", // no metrics/health endpoint needed
		"--leader-elect=false",
		"--controllers=" + strings.Join(controllers, ","),
		// As kubeadm does: each controller acts as its own ServiceAccount under RBAC.
		"--use-service-account-credentials=true",
		"--service-account-private-key-file=" + pki.serviceAccountKey,
		"--root-ca-file=" + pki.ca.certFile,
		"--kube-api-qps=200",
		"--kube-api-burst=400",
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	s.ParsedFlags = &named
	if err := s.ComponentGlobalsRegistry.Set(); err != nil {
		return nil, err
	}
	config, err := s.Config(ctx, all, disabled, aliases)
	if err != nil {
		return nil, err
	}
	return runComponent("kube-controller-manager", func() error { return kcmapp.Run(ctx, config.Complete()) }), nil
}

// waitControllers waits until the ServiceAccount controller has created the `default`
// ServiceAccount in `default`: proof that kube-controller-manager is up and authorised.
func waitControllers(ctx context.Context, config *rest.Config, kcm *component) error {
	client, err := kubernetes.NewForConfig(config)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(5 * time.Minute)
	for {
		_, err := client.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{})
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return errors.New("interrupted while waiting for kube-controller-manager")
		case <-kcm.done:
			return kcm.stopped()
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("kube-controller-manager did not create ServiceAccount default/default within 5m (last: %v)", err)
		}
	}
}

// ---- certificates and kubeconfigs ----

type keyPair struct {
	cert              *x509.Certificate
	key               *ecdsa.PrivateKey
	certPEM, keyPEM   []byte
	certFile, keyFile string
}

type pki struct {
	ca                      *keyPair
	serving                 *keyPair
	admin                   *keyPair
	controllerManager       *keyPair
	serviceAccountKey       string // EC private key (SEC1 PEM), signs tokens
	serviceAccountPublicKey string // its public key (PKIX PEM), verifies them
}

// writePKI creates a CA, a serving certificate for 127.0.0.1/localhost, client certificates
// for the admin (group system:masters) and for kube-controller-manager (its RBAC identity),
// and the ServiceAccount token signing key.
func writePKI(dir string) (*pki, error) {
	ca, err := newKeyPair(dir, "ca", nil, &x509.Certificate{
		Subject:               pkix.Name{CommonName: "kube-test-server-ca"},
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature | x509.KeyUsageCRLSign,
	})
	if err != nil {
		return nil, err
	}
	serving, err := newKeyPair(dir, "apiserver", ca, &x509.Certificate{
		Subject:     pkix.Name{CommonName: "kube-apiserver"},
		DNSNames:    []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	if err != nil {
		return nil, err
	}
	client := func(name, cn string, groups ...string) (*keyPair, error) {
		return newKeyPair(dir, name, ca, &x509.Certificate{
			Subject:     pkix.Name{CommonName: cn, Organization: groups},
			KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		})
	}
	admin, err := client("admin", "kube-test-admin", "system:masters")
	if err != nil {
		return nil, err
	}
	kcm, err := client("kube-controller-manager", "system:kube-controller-manager")
	if err != nil {
		return nil, err
	}
	saKey, saPub, err := writeServiceAccountKey(dir)
	if err != nil {
		return nil, err
	}
	return &pki{ca: ca, serving: serving, admin: admin, controllerManager: kcm, serviceAccountKey: saKey, serviceAccountPublicKey: saPub}, nil
}

// writeServiceAccountKey writes the token signing key in the encodings kube-apiserver and
// kube-controller-manager read: SEC1 for the private key, PKIX for the public one.
func writeServiceAccountKey(dir string) (keyFile, pubFile string, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", err
	}
	sec1, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return "", "", err
	}
	pkix, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return "", "", err
	}
	keyFile = filepath.Join(dir, "service-account.key")
	pubFile = filepath.Join(dir, "service-account.pub")
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: sec1}), 0o600); err != nil {
		return "", "", err
	}
	if err := os.WriteFile(pubFile, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pkix}), 0o644); err != nil {
		return "", "", err
	}
	return keyFile, pubFile, nil
}

// newKeyPair writes NAME.key (PKCS#8, which every client here parses) and NAME.crt signed by
// parent (self-signed when parent is nil).
func newKeyPair(dir, name string, parent *keyPair, template *x509.Certificate) (*keyPair, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	kp := &keyPair{key: key, keyPEM: pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})}
	kp.keyFile = filepath.Join(dir, name+".key")
	if err := os.WriteFile(kp.keyFile, kp.keyPEM, 0o600); err != nil {
		return nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return nil, err
	}
	template.SerialNumber = serial
	template.NotBefore = time.Now().Add(-time.Hour)
	template.NotAfter = time.Now().Add(10 * 365 * 24 * time.Hour)
	signerCert, signerKey := template, key
	if parent != nil {
		signerCert, signerKey = parent.cert, parent.key
	}
	certDER, err := x509.CreateCertificate(rand.Reader, template, signerCert, &key.PublicKey, signerKey)
	if err != nil {
		return nil, err
	}
	if kp.cert, err = x509.ParseCertificate(certDER); err != nil {
		return nil, err
	}
	kp.certPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: certDER})
	kp.certFile = filepath.Join(dir, name+".crt")
	if err := os.WriteFile(kp.certFile, kp.certPEM, 0o644); err != nil {
		return nil, err
	}
	return kp, nil
}

func writeKubeconfig(path, server string, ca, user *keyPair) error {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["kube-test-server"] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: ca.certPEM}
	cfg.AuthInfos["admin"] = &clientcmdapi.AuthInfo{ClientCertificateData: user.certPEM, ClientKeyData: user.keyPEM}
	cfg.Contexts["kube-test-server"] = &clientcmdapi.Context{Cluster: "kube-test-server", AuthInfo: "admin", Namespace: "default"}
	cfg.CurrentContext = "kube-test-server"
	// Written under a temporary name and renamed: a reader never sees half a file.
	tmp := path + ".tmp"
	if err := clientcmd.WriteToFile(*cfg, tmp); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return os.Rename(tmp, path)
}
