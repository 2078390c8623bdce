"""The main job's training loop: a small CNN over an ImageFolder dataset,
read by a PyTorch DataLoader with forked workers.  It knows nothing of
bbcache: run it with LD_PRELOAD=libbbcache_preload.so and BB_JOB_DIR (a #BB
job has both), and its reads come from the job's cache.

    python3 train_demo.py DATA_DIR EPOCHS [CKPT_DIR]
    python3 train_demo.py s3://BUCKET/PREFIX/ EPOCHS --endpoint URL

The second form is the baseline the main job compares with: the same loop
reading every image straight from S3 on every epoch (botocore, from Debian's
awscli package; one GET per image; credentials from ~/.aws/credentials).
"""
import io
import os
import sys
import time

import torch
import torchvision
from PIL import Image
from torchvision import transforms


class S3ImageFolder(torch.utils.data.Dataset):
    """ImageFolder's layout (PREFIX/CLASS/NAME), read from S3 per item."""

    def __init__(self, url, endpoint):
        self.bucket, _, self.prefix = url[len("s3://"):].partition("/")
        self.endpoint = endpoint
        self.client = None
        keys = []
        paginator = self._s3().get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix):
            keys += [o["Key"] for o in page.get("Contents", [])]
        keys.sort()
        self.classes = sorted({k[len(self.prefix):].split("/")[0] for k in keys})
        index = {c: i for i, c in enumerate(self.classes)}
        self.items = [(k, index[k[len(self.prefix):].split("/")[0]]) for k in keys]
        self.to_tensor = transforms.ToTensor()
        self.client = None  # each forked worker makes its own

    def _s3(self):
        if self.client is None:
            import awscli  # noqa: F401  (Debian: awscli carries botocore)
            import botocore.session
            self.client = botocore.session.get_session().create_client(
                "s3", endpoint_url=self.endpoint, region_name="us-east-1")
        return self.client

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        key, label = self.items[i]
        body = self._s3().get_object(Bucket=self.bucket, Key=key)["Body"].read()
        return self.to_tensor(Image.open(io.BytesIO(body)).convert("RGB")), label


def main():
    args = sys.argv[1:]
    endpoint = None
    if "--endpoint" in args:
        i = args.index("--endpoint")
        endpoint = args[i + 1]
        del args[i:i + 2]
    data, epochs = args[0], int(args[1])
    ckpt = args[2] if len(args) > 2 else None
    torch.manual_seed(0)
    if data.startswith("s3://"):
        ds = S3ImageFolder(data, endpoint)
    else:
        ds = torchvision.datasets.ImageFolder(data, transform=transforms.ToTensor())
    dl = torch.utils.data.DataLoader(ds, batch_size=32, shuffle=True, num_workers=2)
    n_classes = len(ds.classes)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(4),
        torch.nn.Flatten(), torch.nn.Linear(8 * 16, n_classes))
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    loss_fn = torch.nn.CrossEntropyLoss()
    for epoch in range(epochs):
        t0 = time.time()
        total, seen = 0.0, 0
        for x, y in dl:
            opt.zero_grad()
            loss = loss_fn(model(x), y)
            loss.backward()
            opt.step()
            total += loss.item() * x.shape[0]
            seen += x.shape[0]
        print(f"epoch {epoch + 1}: {seen} images, loss {total / seen:.4f}, "
              f"{time.time() - t0:.2f} s", flush=True)
    if seen != len(ds):
        sys.exit(f"saw {seen} images of {len(ds)}")
    if ckpt:
        os.makedirs(ckpt, exist_ok=True)
        torch.save(model.state_dict(), os.path.join(ckpt, "model.pt"))
        print(f"checkpoint: {os.path.join(ckpt, 'model.pt')}", flush=True)


if __name__ == "__main__":
    main()
