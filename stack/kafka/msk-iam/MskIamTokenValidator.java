package apigwstream.stack;

import java.net.URI;
import java.net.URLDecoder;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.time.Instant;
import java.time.ZoneOffset;
import java.time.format.DateTimeFormatter;
import java.util.Base64;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import javax.crypto.Mac;
import javax.crypto.spec.SecretKeySpec;
import javax.security.auth.callback.Callback;
import javax.security.auth.callback.UnsupportedCallbackException;
import javax.security.auth.login.AppConfigurationEntry;
import org.apache.kafka.common.security.auth.AuthenticateCallbackHandler;
import org.apache.kafka.common.security.oauthbearer.OAuthBearerToken;
import org.apache.kafka.common.security.oauthbearer.OAuthBearerValidatorCallback;

/**
 * The local stack's stand-in for Amazon MSK's IAM check, on the broker's OAUTHBEARER mechanism: a token is the
 * base64url of a SigV4-presigned URL for kafka-cluster:Connect (what AWS's aws-msk-iam-sasl-signer libraries make),
 * and is accepted when it is signed with the one access key in the JAAS options, for the cluster's region (also an
 * option), and has not expired. Tests run the project's client against it; it is not part of apigw-stream.
 */
public final class MskIamTokenValidator implements AuthenticateCallbackHandler {
  private static final DateTimeFormatter AMZ_DATE = DateTimeFormatter.ofPattern("yyyyMMdd'T'HHmmss'Z'").withZone(ZoneOffset.UTC);
  private String region;
  private String accessKeyId;
  private String secretAccessKey;

  @Override
  public void configure(Map<String, ?> configs, String saslMechanism, List<AppConfigurationEntry> jaasConfigEntries) {
    Map<String, ?> options = jaasConfigEntries.get(0).getOptions();
    region = (String) options.get("region");
    accessKeyId = (String) options.get("accessKeyId");
    secretAccessKey = (String) options.get("secretAccessKey");
    if (region == null || accessKeyId == null || secretAccessKey == null) throw new IllegalArgumentException("region, accessKeyId and secretAccessKey JAAS options are required");
  }

  @Override
  public void handle(Callback[] callbacks) throws UnsupportedCallbackException {
    for (Callback callback : callbacks) {
      if (!(callback instanceof OAuthBearerValidatorCallback validation)) throw new UnsupportedCallbackException(callback);
      try {
        validation.token(verify(validation.tokenValue(), Instant.now()));
      } catch (IllegalArgumentException refused) {
        validation.error("invalid_token", null, null);
      }
    }
  }

  /** The token's principal and lifetime if it is a presigned Connect of our access key, else IllegalArgumentException. */
  OAuthBearerToken verify(String token, Instant now) {
    URI url = URI.create(new String(Base64.getUrlDecoder().decode(token), StandardCharsets.UTF_8));
    Map<String, String> query = new TreeMap<>();
    for (String pair : url.getRawQuery().split("&")) {
      int equals = pair.indexOf('=');
      query.put(decode(pair.substring(0, equals)), decode(pair.substring(equals + 1)));
    }
    String host = url.getHost();
    String[] scope = required(query, "X-Amz-Credential").split("/");
    require("kafka-cluster:Connect".equals(query.get("Action")), "not a Connect action");
    require("AWS4-HMAC-SHA256".equals(query.get("X-Amz-Algorithm")) && "host".equals(query.get("X-Amz-SignedHeaders")), "not a SigV4 presigned URL");
    require(scope.length == 5 && scope[0].equals(accessKeyId) && scope[2].equals(region) && host.equals("kafka." + region + ".amazonaws.com")
        && scope[3].equals("kafka-cluster") && scope[4].equals("aws4_request"), "not signed for this cluster by its key");
    String amzDate = required(query, "X-Amz-Date");
    Instant signedAt = Instant.from(AMZ_DATE.parse(amzDate));
    Instant expiresAt = signedAt.plusSeconds(Long.parseLong(required(query, "X-Amz-Expires")));
    require(!now.isAfter(expiresAt) && !signedAt.isAfter(now.plusSeconds(300)), "expired");

    StringBuilder canonicalQuery = new StringBuilder();
    for (Map.Entry<String, String> entry : query.entrySet()) {
      // The signer appends User-Agent after signing.
      if (entry.getKey().equals("X-Amz-Signature") || entry.getKey().equals("User-Agent")) continue;
      if (canonicalQuery.length() > 0) canonicalQuery.append('&');
      canonicalQuery.append(encode(entry.getKey())).append('=').append(encode(entry.getValue()));
    }
    String canonicalRequest = String.join("\n", "GET", "/", canonicalQuery, "host:" + host, "", "host", hex(sha256("")));
    String credentialScope = String.join("/", scope[1], scope[2], scope[3], scope[4]);
    String stringToSign = String.join("\n", "AWS4-HMAC-SHA256", amzDate, credentialScope, hex(sha256(canonicalRequest)));
    byte[] key = ("AWS4" + secretAccessKey).getBytes(StandardCharsets.UTF_8);
    for (String part : new String[] {scope[1], scope[2], scope[3], scope[4]}) key = hmac(key, part);
    require(hex(hmac(key, stringToSign)).equals(query.get("X-Amz-Signature")), "signature does not match");
    return new Token(token, accessKeyId, signedAt.toEpochMilli(), expiresAt.toEpochMilli());
  }

  @Override
  public void close() {}

  private record Token(String value, String principalName, Long startTimeMs, long lifetimeMs) implements OAuthBearerToken {
    @Override
    public Set<String> scope() {
      return Set.of();
    }
  }

  private static void require(boolean holds, String otherwise) {
    if (!holds) throw new IllegalArgumentException(otherwise);
  }

  private static String required(Map<String, String> query, String name) {
    String value = query.get(name);
    require(value != null, "no " + name);
    return value;
  }

  private static String decode(String text) {
    return URLDecoder.decode(text, StandardCharsets.UTF_8);
  }

  /** SigV4's URI encoding: every byte but the unreserved characters as %XX. */
  private static String encode(String text) {
    StringBuilder out = new StringBuilder();
    for (byte b : text.getBytes(StandardCharsets.UTF_8)) {
      char c = (char) (b & 0xff);
      if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.' || c == '~') out.append(c);
      else out.append('%').append(String.format("%02X", b & 0xff));
    }
    return out.toString();
  }

  private static byte[] sha256(String text) {
    try {
      return MessageDigest.getInstance("SHA-256").digest(text.getBytes(StandardCharsets.UTF_8));
    } catch (java.security.NoSuchAlgorithmException e) {
      throw new IllegalStateException(e);
    }
  }

  private static byte[] hmac(byte[] key, String data) {
    try {
      Mac mac = Mac.getInstance("HmacSHA256");
      mac.init(new SecretKeySpec(key, "HmacSHA256"));
      return mac.doFinal(data.getBytes(StandardCharsets.UTF_8));
    } catch (java.security.GeneralSecurityException e) {
      throw new IllegalStateException(e);
    }
  }

  private static String hex(byte[] bytes) {
    return HexFormat.of().formatHex(bytes);
  }
}
