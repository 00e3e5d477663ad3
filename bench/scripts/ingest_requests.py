# Sends N signed webhook messages to the shipped config's inbox `shop`, one at a time on one
# kept-alive connection; used by callgrind-ingest.sh. Usage: ingest_requests.py HOST:PORT N SEED
import base64, hashlib, hmac, http.client, json, sys, time
host, port = sys.argv[1].split(":"); n = int(sys.argv[2]); seed = sys.argv[3]
key = base64.b64decode("c3dpdGNoYm9hcmQtZGVtby1zZWNyZXQtY2hhbmdlLW1l")
conn = http.client.HTTPConnection(host, int(port), timeout=600)
for i in range(n):
    body = json.dumps({"id": f"{seed}-{i}", "from": {"id": f"c{seed}-{i}", "name": "Ada Lovelace", "email": "ada@example.com"},
                       "text": "Hello, my parcel has not arrived yet. Order 5512."}).encode()
    ts = str(int(time.time())); mid = f"m{seed}{i}"
    sig = base64.b64encode(hmac.new(key, f"{mid}.{ts}.".encode() + body, hashlib.sha256).digest()).decode()
    conn.request("POST", "/hooks/shop", body, {"content-type": "application/json", "webhook-id": mid,
                 "webhook-timestamp": ts, "webhook-signature": "v1," + sig})
    r = conn.getresponse(); r.read()
    if r.status != 202:
        sys.exit(f"status {r.status}")
