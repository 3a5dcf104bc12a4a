# Allocation-heavy Python: dicts, lists, JSON round trip, sorting slices,
# big bytearrays and a growing bytes object. Deterministic output.
import collections, json, random
random.seed(42)
table = {f"key{i}": [random.random() for _ in range(5)] for i in range(150000)}
text = json.dumps(table)
back = json.loads(text)
lengths = collections.Counter(len(k) for k in back)
chunks = sorted(text[i:i + 7] for i in range(0, 1500000, 3))
blobs = [bytearray(n) for n in range(0, 3000000, 7000)]
grown = b""
for i in range(2000):
    grown += bytes([i % 251]) * 100
print(len(text), sorted(lengths.items()), chunks[:3], chunks[-3:])
print(sum(len(b) for b in blobs), len(grown), grown[-5:])
