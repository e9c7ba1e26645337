import time, torch, torch.nn.functional as F
from trt_segmentation.models import build_model
from trt_segmentation.training.transforms import TrainAugmentation
from trt_segmentation.training.trainer import initialise_from_scratch, parameter_groups
torch.backends.cudnn.benchmark = True
dev = torch.device('cuda')
imgs = torch.randint(0, 256, (64, 3, 512, 1024), dtype=torch.uint8, device=dev)
labs = torch.randint(0, 19, (64, 512, 1024), dtype=torch.uint8, device=dev)
def timeit(fn, n=20, warm=5):
    for _ in range(warm): fn()
    torch.cuda.synchronize(); t = time.perf_counter()
    for _ in range(n): fn()
    torch.cuda.synchronize(); return (time.perf_counter() - t) / n * 1000
for bs in (16, 32):
    aug = TrainAugmentation(448, (73.15, 82.9, 72.3))
    g = torch.Generator().manual_seed(0)
    x, y = aug(imgs[:bs], labs[:bs], g)
    print(f'bs{bs} aug ms', round(timeit(lambda: aug(imgs[:bs], labs[:bs], g)), 2))
    for cl in (True, False):
        for dt in (torch.bfloat16, torch.float16):
            m = build_model().to(dev).train(); initialise_from_scratch(m)
            if cl: m = m.to(memory_format=torch.channels_last)
            opt = torch.optim.Adam(m.parameters(), 1e-3)
            xx = x.contiguous(memory_format=torch.channels_last) if cl else x
            def step():
                with torch.autocast('cuda', dtype=dt):
                    lo = m(xx)
                loss = F.cross_entropy(lo.float(), y, ignore_index=255)
                opt.zero_grad(); loss.backward(); opt.step()
            def fwd():
                with torch.no_grad(), torch.autocast('cuda', dtype=dt):
                    m(xx)
            print(f'bs{bs} channels_last={cl} {dt}: step ms', round(timeit(step), 1), 'fwd ms', round(timeit(fwd), 1))
m = build_model().to(dev).train().to(memory_format=torch.channels_last); opt = torch.optim.Adam(m.parameters(), 1e-3)
x, y = aug(imgs[:16], labs[:16], g); xx = x.contiguous(memory_format=torch.channels_last)
def step():
    with torch.autocast('cuda', dtype=torch.bfloat16):
        lo = m(xx)
    loss = F.cross_entropy(lo.float(), y, ignore_index=255); opt.zero_grad(); loss.backward(); opt.step()
for _ in range(5): step()
from torch.profiler import profile, ProfilerActivity
with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
    for _ in range(5): step()
    torch.cuda.synchronize()
print(prof.key_averages().table(sort_by='cuda_time_total', row_limit=25, max_name_column_width=60))
