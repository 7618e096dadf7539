package dev.shiftgate.client;

import java.io.BufferedWriter;
import java.io.OutputStreamWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.util.List;
import java.util.Map;

/**
 * Reads {"cases": [[salt, key], ...], "ips": [...]} from the file named by the first
 * argument and prints {"buckets": [...], "ips": [...]}: the Go tests compare them with
 * their own results (routing/clientcfg, TestCrossCheckJava).
 */
public final class CrossCheck {
    @SuppressWarnings("unchecked")
    public static void main(String[] args) throws Exception {
        Map<String, Object> in = (Map<String, Object>) Json.parse(new String(Files.readAllBytes(Paths.get(args[0])), StandardCharsets.UTF_8));
        BufferedWriter out = new BufferedWriter(new OutputStreamWriter(System.out, StandardCharsets.UTF_8));
        out.write("{\"buckets\":[");
        boolean first = true;
        for (Object o : (List<Object>) in.get("cases")) {
            List<Object> c = (List<Object>) o;
            out.write((first ? "" : ",") + Shiftgate.bucket((String) c.get(0), (String) c.get(1)));
            first = false;
        }
        out.write("],\"ips\":[");
        first = true;
        for (Object o : (List<Object>) in.get("ips")) {
            out.write((first ? "" : ",") + Json.quote(Shiftgate.ipKey((String) o)));
            first = false;
        }
        out.write("]}");
        out.flush();
    }
}
