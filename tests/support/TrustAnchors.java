// Prints the trust anchors of the JVM's default trust manager, one subject a line, after a count
// line; with a HOST:PORT argument it then opens a TLS connection there with the default
// SSLContext and prints `tls verified` or `tls failed: REASON`. Run as
// `java [-Djavax.net.ssl.trustStore=FILE] TrustAnchors.java [HOST:PORT]` (or compiled, inside an
// image whose JRE has no compiler): with no javax.net.ssl.trustStorePassword the store is opened
// the way the JVM opens `cacerts` at run time (no password), so encrypted certificate bags are
// skipped exactly as in production.
import java.security.KeyStore;
import javax.net.ssl.SSLSocket;
import javax.net.ssl.SSLSocketFactory;
import javax.net.ssl.TrustManager;
import javax.net.ssl.TrustManagerFactory;
import javax.net.ssl.X509TrustManager;

public class TrustAnchors {
    public static void main(String[] args) throws Exception {
        TrustManagerFactory factory =
                TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
        factory.init((KeyStore) null);
        for (TrustManager manager : factory.getTrustManagers()) {
            if (manager instanceof X509TrustManager x509) {
                var issuers = x509.getAcceptedIssuers();
                System.out.println("anchors " + issuers.length);
                for (var issuer : issuers) {
                    System.out.println(issuer.getSubjectX500Principal().getName());
                }
            }
        }
        if (args.length == 1) {
            String[] target = args[0].split(":");
            SSLSocketFactory sockets = (SSLSocketFactory) SSLSocketFactory.getDefault();
            try (SSLSocket socket =
                    (SSLSocket) sockets.createSocket(target[0], Integer.parseInt(target[1]))) {
                socket.startHandshake();
                System.out.println("tls verified");
            } catch (Exception e) {
                System.out.println("tls failed: " + e);
            }
        }
    }
}
