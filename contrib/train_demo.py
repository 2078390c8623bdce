"""The main job's training loop: a small CNN over an ImageFolder dataset,
read by a PyTorch DataLoader with forked workers.  It knows nothing of
bbcache: run it with LD_PRELOAD=libbbcache_preload.so and BBCACHE_JOB_DIR,
and its reads come from the job's cache.

    python3 train_demo.py DATA_DIR EPOCHS
"""
import sys
import time

import torch
import torchvision
from torchvision import transforms


def main():
    data, epochs = sys.argv[1], int(sys.argv[2])
    torch.manual_seed(0)
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


if __name__ == "__main__":
    main()
