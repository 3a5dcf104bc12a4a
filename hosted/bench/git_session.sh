# A short git session in ./repo: init, add, commit twice, log, diff, gc.
# Deterministic when GIT_AUTHOR_* / GIT_COMMITTER_* dates are fixed.
set -e
rm -rf repo
git init -q -b main repo
cd repo
for i in 1 2 3 4 5 6 7 8; do
    seq 1 $((i * 500)) > "file$i.txt"
done
git add .
git commit -q -m "first commit"
sed -i 's/7/seven/' file3.txt file8.txt
mkdir sub && cp file1.txt sub/copy.txt
git add -A
git commit -q -m "second commit"
git log --stat
git diff HEAD~1 --stat
git show HEAD:file3.txt | tail -3
git gc -q
git count-objects -v | grep -v size
