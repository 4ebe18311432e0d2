# The cells of the Research/Domain seed document, in order and as written there; only
# the imports changed (batchflow.research -> slurmbatch). `%%timeit` cells are timed
# once with time.perf_counter. After each cell that shows a table, the table is printed
# as a JSON line starting with "MARK <cell>" for tests/test_seed_research.py to check.
import json
import time


def show(cell, df):
    print(f"MARK {cell} " + json.dumps({"columns": [str(c) for c in df.columns],
                                        "rows": df.astype(object).where(df.notna(), None)
                                        .values.tolist()}, default=str))


# In [1]:
import sys
sys.path.append('../../..')

from slurmbatch import Research, Option, Domain, EC, O, EP

# In [2]:
def power(a=2, b=3):
    return a ** b

research = Research().add_callable(power, save_to='power')
research.run(dump_results=False)

# In [3]:
show(3, research.results.df)

# In [4]:
research = Research().add_callable(power, save_to='power', a=3, b=2)
research = Research().add_callable(power, save_to='power', args=[3, 2])
research = Research().power(3, 2, save_to='power')
research = Research().power(a=3, b=2, save_to='power')

research.run(dump_results=False)

show(4, research.results.df)

# In [5]:
domain = Domain(a=[2, 3], b=[3, 2])

# In [6]:
research = Research(domain=domain).power(a=EC('a'), b=EC('b'), save_to='power')
research.run(dump_results=False)

# In [7]:
show(7, research.results.df)

# In [8]:
domain = Domain({'a': [2, 3], 'b': [3, 2]})
domain = Domain(a=[2, 3]) * Domain(b=[3, 2])
domain = Option('a', [2, 3]) * Option('b', [3, 2])

# In [9]:
domain = Domain(a=[2, 3]) + Domain(b=[3, 2])

research = Research(domain=domain).power(kwargs=EC(), save_to='power')
research.run(dump_results=False)

show(9, research.results.df)

# In [10]:
domain = Domain(a=[4, 5]) @ Domain(b=[1, 2])

research = Research(domain=domain).power(kwargs=EC(), save_to='power')
research.run(dump_results=False)

show(10, research.results.df)

# In [11]:
domain = Domain({'a': [2, 3], 'b': [3, 2]})

def inc(x):
    return x + 1

research = (Research(domain=domain)
            .power(a=EC('a'), b=EC('b'), save_to='power')
            .inc(O('power'), save_to='inc')
           )
research.run(dump_results=False)

show(11, research.results.df)

# In [12]:
show(12, research.results.to_df(pivot=False))

# In [13]:
def inc(x):
    for i in range(2):
        yield x + i

domain = Domain(a=[2, 3], b=[3, 2])

research = (Research(domain=domain)
            .add_callable(power, a=EC('a'), b=EC('b'))
            .add_generator(inc, save_to='inc', x=O('power'))
           )
research.run(dump_results=False, finalize=False)

show(13, research.results.df)

# In [14]:
research = (Research(domain=domain)
            .power(a=EC('a'), b=EC('b'))
            .inc(x=O('power'), save_to='inc', mode='generator')
           )

research.run(dump_results=False, finalize=False)

show(14, research.results.df)

# In [15]:
research = (Research(domain=domain)
            .power(a=EC('a'), b=EC('b'))
            .inc(O('power'), save_to='inc', mode='generator')
            .add_callable('root', power, a=O('inc'), b=0.5, save_to='root', when='last')
           )
research.run(dump_results=False)

show(15, research.results.df)

# In [16]:
research = (Research(domain=domain)
            .power(a=EC('a'), b=EC('b'))
            .inc(O('power'), save_to='inc', mode='generator')
            .add_callable('root', power, a=O('inc'), b=0.5, save_to='root', when='last')
           )
research.run(dump_results=False, finalize=False)

show(16, research.results.df)

# In [17]:
class MyCalc:
    def __init__(self, b):
        self.b = b

    def power(self, a):
        return a ** self.b

research = (Research(domain=domain)
            .add_instance('calc', MyCalc, b=EC('b'))
            .add_callable('calc.power', a=EC('a'))
            .add_generator(inc, x=O('calc.power'), save_to='inc')
           )

research.run(n_iters=2, dump_results=False, finalize=False)

show(17, research.results.df)

# In [18]:
def heavy_callable():
    i = int(2 * 10e7)
    for i in range(i):
        pass

# In [19]: %%timeit heavy_callable()
t0 = time.perf_counter()
heavy_callable()
print(f"MARK 19 {time.perf_counter() - t0}")

# In [20]: %%timeit
t0 = time.perf_counter()
research = Research(n_reps=2).heavy_callable()
research.run(dump_results=False, bar=False)
print(f"MARK 20 {time.perf_counter() - t0}")
show("20df", research.results.df)

# In [21]: %%timeit
t0 = time.perf_counter()
research = Research(n_reps=2).heavy_callable()
research.run(dump_results=False, workers=2, bar=False)
print(f"MARK 21 {time.perf_counter() - t0}")

# In [22]:
import numpy as np
from slurmbatch import E

def load_data(random):
    return random.normal(size=10)

def mean(array, use_numpy=True):
    if use_numpy:
        return f"{np.mean(array):.02f} (with numpy)"
    return f"{sum(array) / len(array):.02f} (without numpy)"

domain = Domain({'use_numpy': [False, True]})

research = (Research(domain=domain)
            .add_callable(load_data, random=E().random)
            .add_callable(mean, array=O('load_data'), use_numpy=EC('use_numpy'),
                          save_to='stat')
           )

research.run(n_iters=2, dump_results=False)

# In [23]:
show(23, research.results.df)

# In [24]:
research = (Research(domain=domain)
            .add_callable(load_data, random=E().random, root=True)
            .add_callable(mean, array=O('load_data'), use_numpy=EC('use_numpy'),
                          save_to='stat')
           )

research.run(n_iters=2, branches=2, dump_results=False)

# In [25]:
show(25, research.results.df)
