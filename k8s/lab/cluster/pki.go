package cluster

// The lab's PKI: one CA (ECDSA P-256) signs every serving and client
// certificate, and a separate key pair signs service-account tokens. Keys are
// written 0600 under pki/; kubeconfigs refer to the files by path.

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"path/filepath"
	"time"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

type keyPair struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

type certSpec struct {
	name   string // file stem under pki/
	cn     string
	orgs   []string
	ips    []net.IP
	dns    []string
	server bool
	client bool
}

func newKey() (*ecdsa.PrivateKey, error) {
	return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
}

func serial() (*big.Int, error) {
	return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
}

func (l *Lab) pki(name string) string { return filepath.Join(l.Dir, "pki", name) }

func writeKey(path string, key *ecdsa.PrivateKey) error {
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return fmt.Errorf("cannot encode the key %s: %w", path, err)
	}
	return writeFileAtomic(path, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), 0o600)
}

func writeCert(path string, der []byte) error {
	return writeFileAtomic(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
}

// makePKI writes the CA, every component's certificate and the
// service-account key pair.
func (l *Lab) makePKI() error {
	now := time.Now().Add(-time.Hour)
	caKey, err := newKey()
	if err != nil {
		return fmt.Errorf("cannot generate the CA key: %w", err)
	}
	sn, err := serial()
	if err != nil {
		return err
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          sn,
		Subject:               pkix.Name{CommonName: "hostdev-k8s-lab-ca"},
		NotBefore:             now,
		NotAfter:              now.Add(10 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return fmt.Errorf("cannot sign the CA certificate: %w", err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return err
	}
	if err := writeCert(l.pki("ca.crt"), caDER); err != nil {
		return err
	}
	if err := writeKey(l.pki("ca.key"), caKey); err != nil {
		return err
	}
	ca := keyPair{caCert, caKey}
	loop := []net.IP{net.ParseIP("127.0.0.1")}
	specs := []certSpec{
		{name: "etcd", cn: "etcd", ips: loop, dns: []string{"localhost"}, server: true, client: true},
		{name: "apiserver", cn: "kube-apiserver", ips: append(loop, net.ParseIP(serviceIP)),
			dns: []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
				"kubernetes.default.svc.cluster.local"}, server: true},
		{name: "apiserver-etcd-client", cn: "kube-apiserver-etcd-client", client: true},
		{name: "apiserver-kubelet-client", cn: "kube-apiserver-kubelet-client", orgs: []string{"system:masters"}, client: true},
		{name: "admin", cn: "hostdev-lab-admin", orgs: []string{"system:masters"}, client: true},
		{name: "controller-manager", cn: "system:kube-controller-manager", client: true},
		{name: "scheduler", cn: "system:kube-scheduler", client: true},
		{name: "controller-manager-serving", cn: "kube-controller-manager", ips: loop, dns: []string{"localhost"}, server: true},
		{name: "scheduler-serving", cn: "kube-scheduler", ips: loop, dns: []string{"localhost"}, server: true},
		{name: "kubelet-client", cn: "system:node:" + NodeName, orgs: []string{"system:nodes"}, client: true},
		{name: "kubelet", cn: "system:node:" + NodeName, ips: loop, dns: []string{"localhost"}, server: true},
	}
	for _, s := range specs {
		if err := l.issue(ca, s, now); err != nil {
			return err
		}
	}
	saKey, err := newKey()
	if err != nil {
		return fmt.Errorf("cannot generate the service-account key: %w", err)
	}
	if err := writeKey(l.pki("sa.key"), saKey); err != nil {
		return err
	}
	pub, err := x509.MarshalPKIXPublicKey(&saKey.PublicKey)
	if err != nil {
		return err
	}
	return writeFileAtomic(l.pki("sa.pub"), pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), 0o644)
}

func (l *Lab) issue(ca keyPair, s certSpec, now time.Time) error {
	key, err := newKey()
	if err != nil {
		return fmt.Errorf("cannot generate the key of %s: %w", s.name, err)
	}
	sn, err := serial()
	if err != nil {
		return err
	}
	t := &x509.Certificate{
		SerialNumber: sn,
		Subject:      pkix.Name{CommonName: s.cn, Organization: s.orgs},
		NotBefore:    now,
		NotAfter:     now.Add(10 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		IPAddresses:  s.ips,
		DNSNames:     s.dns,
	}
	if s.server {
		t.ExtKeyUsage = append(t.ExtKeyUsage, x509.ExtKeyUsageServerAuth)
	}
	if s.client {
		t.ExtKeyUsage = append(t.ExtKeyUsage, x509.ExtKeyUsageClientAuth)
	}
	der, err := x509.CreateCertificate(rand.Reader, t, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		return fmt.Errorf("cannot sign the certificate of %s: %w", s.name, err)
	}
	if err := writeCert(l.pki(s.name+".crt"), der); err != nil {
		return err
	}
	return writeKey(l.pki(s.name+".key"), key)
}

// writeKubeconfig writes a kubeconfig that reaches the apiserver with the
// named client certificate.
func (l *Lab) writeKubeconfig(path, user, certName string) error {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["hostdev-lab"] = &clientcmdapi.Cluster{
		Server:               l.APIServerURL(),
		CertificateAuthority: l.pki("ca.crt"),
	}
	cfg.AuthInfos[user] = &clientcmdapi.AuthInfo{
		ClientCertificate: l.pki(certName + ".crt"),
		ClientKey:         l.pki(certName + ".key"),
	}
	cfg.Contexts["hostdev-lab"] = &clientcmdapi.Context{Cluster: "hostdev-lab", AuthInfo: user}
	cfg.CurrentContext = "hostdev-lab"
	b, err := clientcmd.Write(*cfg)
	if err != nil {
		return fmt.Errorf("cannot encode the kubeconfig %s: %w", path, err)
	}
	return writeFileAtomic(path, b, 0o600)
}
