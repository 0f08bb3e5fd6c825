package virtualnodecmd

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"time"

	certificatesv1 "k8s.io/api/certificates/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/certificate/csr"

	"github.com/skiff-sh/skiff/internal/errdefs"
)

// SelfSigned returns a self-signed serving certificate for the node's
// name and IP. The API server accepts it unless it verifies kubelet
// certificates (--kubelet-certificate-authority).
func SelfSigned(nodeName, ip string) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: nodeName},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{nodeName},
	}
	if p := net.ParseIP(ip); p != nil {
		tmpl.IPAddresses = []net.IP{p}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

// RequestServingCert asks the cluster to sign a kubelet serving
// certificate (signer kubernetes.io/kubelet-serving) for the node and
// waits until it is approved and issued. An administrator, or an approver
// controller, approves the request.
func RequestServingCert(ctx context.Context, kube kubernetes.Interface, nodeName, ip string, log *slog.Logger) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.CertificateRequest{
		Subject:  pkix.Name{CommonName: "system:node:" + nodeName, Organization: []string{"system:nodes"}},
		DNSNames: []string{nodeName},
	}
	if p := net.ParseIP(ip); p != nil {
		tmpl.IPAddresses = []net.IP{p}
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	csrPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
	name := fmt.Sprintf("%s-serving-%d", nodeName, time.Now().Unix())
	usages := []certificatesv1.KeyUsage{certificatesv1.UsageDigitalSignature, certificatesv1.UsageServerAuth}
	reqName, uid, err := csr.RequestCertificateWithContext(ctx, kube, csrPEM, name, certificatesv1.KubeletServingSignerName, nil, usages, key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("create CertificateSigningRequest: %v: %w", err, errdefs.ErrUnavailable)
	}
	log.Info("waiting for the serving CertificateSigningRequest to be approved and signed", "csr", reqName,
		"approve", "kubectl certificate approve "+reqName)
	certPEM, err := csr.WaitForCertificate(ctx, kube, reqName, uid)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("CertificateSigningRequest %s: %v: %w", reqName, err, errdefs.ErrUnavailable)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.X509KeyPair(certPEM, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}))
}
