// Checks notary's RFC 4998 evidence records with Bouncy Castle's own ERS code.
//
// Usage: java ErsCheck TASKS
// TASKS is a text file, one task a line, fields separated by tabs:
//   verify  NAME  ERS-FILE  CONTENT-FILE  RECORD-FILE  CA-PEM
//       BC parses the evidence record, finds the content alone in it, finds the data
//       group (content, record) in it, checks that the reduced hash tree leads to the
//       token's imprint, validates the token's signature and ESSCertID binding with the
//       signer certificate, and validates the signer's path to the CA at genTime.
//   root    NAME  ALGORITHM  EXPECTED-ROOT-HEX  GROUPS-FILE
//       BC's ERS generator is fed data groups and computes the root it would have
//       time-stamped. GROUPS-FILE: one data object a line, "group<TAB>FILE" where lines
//       with the same group number form one ERSDataGroup and a group of one line is
//       a plain data object.
// Prints "OK NAME" or "FAIL NAME: reason" per task; exits 1 when any task failed.

import java.io.FileInputStream;
import java.io.InputStream;
import java.math.BigInteger;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.security.Security;
import java.security.cert.CertPathBuilder;
import java.security.cert.CertStore;
import java.security.cert.CertificateFactory;
import java.security.cert.CollectionCertStoreParameters;
import java.security.cert.PKIXBuilderParameters;
import java.security.cert.TrustAnchor;
import java.security.cert.X509CertSelector;
import java.security.cert.X509Certificate;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Collections;
import java.util.Date;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import org.bouncycastle.asn1.x509.AlgorithmIdentifier;
import org.bouncycastle.cert.X509CertificateHolder;
import org.bouncycastle.cert.jcajce.JcaX509CertificateConverter;
import org.bouncycastle.cms.SignerInformationVerifier;
import org.bouncycastle.cms.jcajce.JcaSimpleSignerInfoVerifierBuilder;
import org.bouncycastle.jce.provider.BouncyCastleProvider;
import org.bouncycastle.operator.DigestCalculator;
import org.bouncycastle.operator.DigestCalculatorProvider;
import org.bouncycastle.operator.DefaultDigestAlgorithmIdentifierFinder;
import org.bouncycastle.operator.jcajce.JcaDigestCalculatorProviderBuilder;
import org.bouncycastle.tsp.TimeStampRequest;
import org.bouncycastle.tsp.TimeStampRequestGenerator;
import org.bouncycastle.tsp.TimeStampToken;
import org.bouncycastle.tsp.ers.ERSArchiveTimeStamp;
import org.bouncycastle.tsp.ers.ERSArchiveTimeStampGenerator;
import org.bouncycastle.tsp.ers.ERSByteData;
import org.bouncycastle.tsp.ers.ERSData;
import org.bouncycastle.tsp.ers.ERSDataGroup;
import org.bouncycastle.tsp.ers.ERSEvidenceRecord;
import org.bouncycastle.util.Store;
import org.bouncycastle.util.encoders.Hex;

public final class ErsCheck {
    private static DigestCalculatorProvider digests;

    public static void main(String[] args) throws Exception {
        Security.addProvider(new BouncyCastleProvider());
        digests = new JcaDigestCalculatorProviderBuilder().setProvider("BC").build();
        boolean allOk = true;
        for (String line : Files.readAllLines(Paths.get(args[0]), StandardCharsets.UTF_8)) {
            if (line.isEmpty()) {
                continue;
            }
            String[] f = line.split("\t");
            try {
                if (f[0].equals("verify")) {
                    verify(f[2], f[3], f[4], f[5]);
                } else if (f[0].equals("root")) {
                    root(f[2], f[3], f[4]);
                } else {
                    throw new IllegalArgumentException("unknown task " + f[0]);
                }
                System.out.println("OK " + f[1]);
            } catch (Exception e) {
                allOk = false;
                System.out.println("FAIL " + f[1] + ": " + e);
            }
        }
        System.exit(allOk ? 0 : 1);
    }

    private static void verify(String ersFile, String contentFile, String recordFile,
                               String caFile) throws Exception {
        byte[] content = Files.readAllBytes(Paths.get(contentFile));
        byte[] record = Files.readAllBytes(Paths.get(recordFile));
        ERSEvidenceRecord ers = new ERSEvidenceRecord(
            Files.readAllBytes(Paths.get(ersFile)), digests);
        ERSArchiveTimeStamp ats = new ERSArchiveTimeStamp(
            ers.toASN1Structure().getArchiveTimeStampSequence()
                .getArchiveTimeStampChains()[0].getArchiveTimestamps()[0], digests);
        Date genTime = ats.getGenTime();

        // RFC 4998 §5.3: the content alone, then the whole data group, at genTime.
        ers.validatePresent(new ERSByteData(content), genTime);
        ers.validatePresent(
            new ERSDataGroup(new ERSByteData(content), new ERSByteData(record)), genTime);
        byte[] bogus = "data that is not in this record".getBytes(StandardCharsets.US_ASCII);
        if (ers.isContaining(new ERSByteData(bogus), genTime)) {
            throw new IllegalStateException("bogus data reported present");
        }

        X509CertificateHolder signer = ers.getSigningCertificate();
        if (signer == null) {
            throw new IllegalStateException("token carries no signer certificate");
        }
        SignerInformationVerifier verifier =
            new JcaSimpleSignerInfoVerifierBuilder().setProvider("BC").build(signer);
        ers.validate(verifier);
        validatePath(ats.getTimeStampToken(), signer, caFile, genTime);
    }

    private static void validatePath(TimeStampToken token, X509CertificateHolder signer,
                                     String caFile, Date at) throws Exception {
        CertificateFactory factory = CertificateFactory.getInstance("X.509");
        Collection<TrustAnchor> anchors = new ArrayList<>();
        try (InputStream in = new FileInputStream(caFile)) {
            for (java.security.cert.Certificate c : factory.generateCertificates(in)) {
                anchors.add(new TrustAnchor((X509Certificate) c, null));
            }
        }
        JcaX509CertificateConverter converter = new JcaX509CertificateConverter();
        List<X509Certificate> pool = new ArrayList<>();
        @SuppressWarnings("unchecked")
        Store<X509CertificateHolder> store = token.getCertificates();
        for (X509CertificateHolder holder : store.getMatches(null)) {
            pool.add(converter.getCertificate(holder));
        }
        X509CertSelector target = new X509CertSelector();
        target.setCertificate(converter.getCertificate(signer));
        PKIXBuilderParameters params = new PKIXBuilderParameters(
            new java.util.HashSet<>(anchors), target);
        params.setRevocationEnabled(false);
        params.setDate(at);
        params.addCertStore(CertStore.getInstance(
            "Collection", new CollectionCertStoreParameters(pool)));
        CertPathBuilder.getInstance("PKIX").build(params);
    }

    private static void root(String algorithm, String expectedHex, String groupsFile)
            throws Exception {
        AlgorithmIdentifier algId =
            new DefaultDigestAlgorithmIdentifierFinder().find(algorithm.toUpperCase()
                .replace("SHA", "SHA-"));
        DigestCalculator calculator = digests.get(algId);
        ERSArchiveTimeStampGenerator generator = new ERSArchiveTimeStampGenerator(calculator);
        Map<String, List<ERSData>> groups = new LinkedHashMap<>();
        for (String line : Files.readAllLines(Paths.get(groupsFile), StandardCharsets.UTF_8)) {
            if (line.isEmpty()) {
                continue;
            }
            String[] f = line.split("\t");
            groups.computeIfAbsent(f[0], k -> new ArrayList<>())
                .add(new ERSByteData(Files.readAllBytes(Paths.get(f[1]))));
        }
        for (List<ERSData> members : groups.values()) {
            generator.addData(members.size() == 1
                ? members.get(0) : new ERSDataGroup(members));
        }
        TimeStampRequest request = generator.generateTimeStampRequest(
            new TimeStampRequestGenerator(), BigInteger.ONE);
        String actual = Hex.toHexString(request.getMessageImprintDigest());
        if (!actual.equals(expectedHex)) {
            throw new IllegalStateException(
                "root mismatch (expected " + expectedHex + ", got " + actual + ")");
        }
    }
}
